#!/usr/bin/env bash
# The main job, from a fresh clone: install aotc, build a .pt2 package and run
# it through the C++ runtime (aotc-run), checking it against eager PyTorch.
#
# Until the compiler lands, the package's model library is the hand-written
# MLP in tests/fixtures/mlp_demo.cc; its weights, sample input and expected
# output come from a seeded torch nn.Sequential (scripts/make_demo_package.py).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "quickstart: building the demo model library"
cmake -S . -B build/demo -G Ninja -DAOTC_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/demo --target fixture_mlp_demo -j2 >/dev/null
library=$(find build/demo/tests/fixtures -name 'mlp_demo*.so' | head -n 1)

echo "quickstart: packaging it with torch weights, sample input and eager output"
python3 scripts/make_demo_package.py --library "$library" -o build/demo/mlp_demo.pt2

aotc inspect build/demo/mlp_demo.pt2
echo "quickstart: running it through the C++ runtime"
aotc-run build/demo/mlp_demo.pt2 -n 100
