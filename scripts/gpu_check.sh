#!/usr/bin/env bash
# The GPU check of aotc in one command, for a machine with an NVIDIA GPU, its
# driver, torch with CUDA, triton, cmake and ninja (no network needed):
#   1. the CUDA runtime smoke test (scripts/gpu_smoke.sh: device, modules,
#      launches, sync-debug, faults);
#   2. the GPU tests: the examples in float32/bfloat16/float16 against eager
#      on the GPU, and graph replay; then, with AOTC_TEST_DEVICE=cuda, the
#      conformance suites, the Hugging Face models and the examples with
#      dynamic batch and sequence dims, each exported as a cuda package for
#      this GPU, run through the C++ runtime and compared with eager on CPU;
#   3. the benchmark (scripts/bench.py --device cuda), its JSON and chart.
# Prints a PASS/FAIL line per step and a summary; exits non-zero on a failure.
#
# Usage: scripts/gpu_check.sh [--steps smoke,examples,suites,bench] [--out DIR]
#   --steps  which steps to run (default: all four)
#   --out    where logs, the benchmark JSON and chart go (default build/gpu-check)
# AOTC_BENCH_ARGS adds arguments to the benchmark (e.g. "--budget-s 150").
# Wheels of missing Python packages (zstandard, say) may be put in .whl/:
# they are installed to a private folder first.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="smoke,examples,suites,bench"
out="$root/build/gpu-check"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--steps smoke,examples,suites,bench] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
cd "$root"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/aotc-site .whl/*.whl
  export PYTHONPATH="/tmp/aotc-site${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "== $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | head -n1)"
python3 -c 'import sys, torch, triton; print("== python", sys.version.split()[0], "torch",
  torch.__version__, "triton", triton.__version__, "cuda", torch.version.cuda)'

results=()
failed=0
step() {
  local name="$1"
  shift
  echo "== $name"
  local start=$SECONDS
  "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  local took=$((SECONDS - start))
  local tail_line
  tail_line="$(grep -E '(passed|failed|error)' "$out/$name.log" | tail -n1)"
  if [[ $rc == 0 ]]; then
    results+=("PASS  $name (${took} s) $tail_line")
  else
    results+=("FAIL  $name (${took} s, exit $rc) $tail_line")
    failed=1
  fi
}

want() { [[ ",$steps," == *",$1,"* ]]; }

pytest=(python3 -m pytest -q -p no:cacheprovider -rf)
# pytest-xdist where installed: exports compile in parallel on the GPU host.
if python3 -c "import xdist" 2>/dev/null; then pytest+=(-n "${AOTC_CHECK_WORKERS:-8}"); fi
if want smoke; then step smoke bash scripts/gpu_smoke.sh; fi
if want examples; then step examples "${pytest[@]}" tests/test_gpu_models.py tests/test_gpu.py; fi
if want suites; then
  step suites env AOTC_TEST_DEVICE=cuda "${pytest[@]}" tests/test_conformance_basic.py \
    tests/test_conformance_shapes.py tests/test_hf_models.py \
    tests/test_dynamic_shapes.py::test_example_runs_at_min_max_and_odd_sizes
fi
if want bench; then
  # The benchmark runs outside pytest: build the runtime library it loads.
  runtime_build="$root/build/gpu-check-runtime"
  cmake -S "$root" -B "$runtime_build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$runtime_build" --target aotc >/dev/null &&
    export AOTC_RUNTIME_LIBRARY="$runtime_build/cpp_runtime/libaotc.so"
  # shellcheck disable=SC2086  # AOTC_BENCH_ARGS: extra words, e.g. "--budget-s 150"
  step bench python3 scripts/bench.py --device cuda --json "$out/bench.json" \
    --chart "$out/bench.png" ${AOTC_BENCH_ARGS:-}
fi

echo
echo "== gpu_check.sh summary"
printf '%s\n' "${results[@]}"
if [[ $failed == 0 ]]; then echo "gpu_check.sh: PASS"; else echo "gpu_check.sh: FAIL"; fi
exit "$failed"
