#!/usr/bin/env bash
# GPU smoke test of the CUDA runtime path, for a machine with an NVIDIA GPU,
# its driver, cmake, ninja and nvcc:
#   1. builds the runtime, the gpu_add model fixture and the CUDA tests
#      (-DAOTC_BUILD_TESTS=ON) in build/gpu-smoke;
#   2. compiles tests/fixtures/gpu/add_one.cu to a cubin with nvcc for the
#      GPU's architecture (nvidia-smi's compute capability, or $AOTC_GPU_ARCH,
#      default sm_90);
#   3. runs the no-GPU tests (fake host, fake driver), then gpu_smoke on the
#      real device: open, arch/driver checks, memory, module load, add_one
#      launches, shared memory limits, a second thread, the fixture through
#      the host table, sync-debug mode, and an out-of-bounds launch that must
#      give a named error and sticky death -- twice, as the fault kills the
#      process's context: once in sync-debug mode (the error names the kernel),
#      once without (the fault surfaces at the next synchronize).
# Prints a PASS/FAIL summary; exits non-zero on any failure.
#
# Usage: scripts/gpu_smoke.sh [--device N] [--all]
#   --all   build every target and run the whole ctest suite as well.
# Environment: AOTC_GPU_SMOKE_BUILD (build dir), AOTC_GPU_ARCH (sm_XY),
#   NVCC (nvcc path), CMAKE_BUILD_TYPE (default RelWithDebInfo).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${AOTC_GPU_SMOKE_BUILD:-$root/build/gpu-smoke}"
device=0
all=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --all) all=1; shift ;;
    *) echo "usage: $0 [--device N] [--all]" >&2; exit 2 ;;
  esac
done

nvcc="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$nvcc" ]]; then
  echo "gpu_smoke.sh: nvcc not found (set NVCC or put it on PATH)" >&2
  exit 2
fi

arch="${AOTC_GPU_ARCH:-}"
if [[ -z "$arch" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i "$device" 2>/dev/null |
    head -n1 | tr -d ' .')" || cc=""
  if [[ "$cc" =~ ^[0-9]+$ ]]; then arch="sm_$cc"; fi
fi
arch="${arch:-sm_90}"
echo "== GPU ${device}: ${arch}; nvcc: ${nvcc}; build: ${build}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader -i "$device" || true
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root" -B "$build" "${generator[@]}" -DAOTC_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DAOTC_NVCC="$nvcc" -DAOTC_GPU_SMOKE_ARCH="$arch"
jobs="$(nproc 2>/dev/null || echo 4)"
if [[ "$all" == 1 ]]; then
  cmake --build "$build" -j"$jobs"
else
  cmake --build "$build" -j"$jobs" --target aotc gpu_launch_model gpu_smoke \
    test_gpu_launch_fake_host test_cuda_device_fake_driver
fi

cubin="$build/add_one.${arch}.cubin"
"$nvcc" -cubin -arch="$arch" -o "$cubin" "$root/tests/fixtures/gpu/add_one.cu"
echo "== built $cubin ($(wc -c <"$cubin") bytes)"

results=()
failed=0
step() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then
    results+=("PASS  $name")
  else
    results+=("FAIL  $name (exit $?)")
    failed=1
  fi
}

tests="$build/cpp_runtime/tests"
step "fixture against a fake host" "$tests/test_gpu_launch_fake_host"
step "CudaDevice on the fake driver" "$tests/test_cuda_device_fake_driver"
smoke=("$tests/gpu_smoke" --require-gpu --device "$device" --cubin "$cubin"
  --fixture "$build/tests/fixtures/gpu/gpu_launch_model.so")
step "gpu_smoke on cuda:$device (fault in sync-debug mode)" "${smoke[@]}"
step "gpu_smoke on cuda:$device (asynchronous fault)" "${smoke[@]}" --async-fault
if [[ "$all" == 1 ]]; then
  step "ctest (whole suite)" ctest --test-dir "$build" --output-on-failure -j"$jobs"
fi

echo
echo "== gpu_smoke.sh summary"
printf '%s\n' "${results[@]}"
if [[ "$failed" == 0 ]]; then echo "gpu_smoke.sh: PASS"; else echo "gpu_smoke.sh: FAIL"; fi
exit "$failed"
