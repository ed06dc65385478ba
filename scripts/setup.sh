#!/usr/bin/env bash
# Installs everything aotc needs on a fresh Debian/Ubuntu machine: system
# packages (libzstd for the runtime, clang for the fuzz target, ninja), the
# CPU build of torch (pinned: an unpinned torch pulls a multi-GB CUDA build),
# and aotc itself (pip builds the C++ runtime through CMake).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/include/zstd.h ] || missing+=(libzstd-dev)
command -v clang >/dev/null || missing+=(clang)
dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || missing+=(libclang-rt-14-dev)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v unzip >/dev/null || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
python3 -m pip install -q --disable-pip-version-check pytest ruff expecttest "transformers==5.17.0"
# Triton compiles GPU packages offline (no GPU needed); pinned to the GPU
# machine's release so a package built here matches one built there.
python3 -m pip install -q --disable-pip-version-check "triton==3.6.0"
echo "setup: building and installing aotc (C++ runtime via CMake + Ninja)"
python3 -m pip install -q --disable-pip-version-check .
