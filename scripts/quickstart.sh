#!/usr/bin/env bash
# The main job, from a fresh clone: install aotc, compile an example model to a
# .pt2 package with `aotc export`, and run it through the C++ runtime
# (aotc-run), checking it against the eager PyTorch outputs stored in the
# package.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

mkdir -p build/quickstart
echo "quickstart: aotc export examples/gpt.py"
aotc export examples/gpt.py -o build/quickstart/gpt.pt2
aotc inspect build/quickstart/gpt.pt2
echo "quickstart: running it through the C++ runtime"
aotc-run build/quickstart/gpt.pt2 -n 50
