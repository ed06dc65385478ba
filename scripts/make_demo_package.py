#!/usr/bin/env python3
"""Builds the README demo package, mlp_demo.pt2, without the compiler.

The model library is the hand-written fixture tests/fixtures/mlp_demo.cc: what
`aotc export` produces for

    nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

with the batch dim dynamic in [1, 64]. This script creates that module with
torch (seed 0), stores its state_dict as the package's constants, and a random
normal input with the eager output as the package's samples, so
`aotc-run mlp_demo.pt2` checks the runtime against eager PyTorch.

    cmake -S . -B build -G Ninja -DAOTC_BUILD_TESTS=ON && cmake --build build
    python scripts/make_demo_package.py --output mlp_demo.pt2
    build/cpp_runtime/tools/aotc-run mlp_demo.pt2

--library defaults to the first mlp_demo.so found under build/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY_NAME = "mlp_demo.so"
BATCH_RANGE = (1, 64)
CONSTANT_SHAPES = {"0.weight": [16, 8], "0.bias": [16], "2.weight": [4, 16], "2.bias": [4]}


def find_library(build_root: Path) -> Path:
    """The newest build/<dir>/tests/fixtures/mlp_demo.so."""
    candidates = sorted(
        build_root.glob(f"*/tests/fixtures/{LIBRARY_NAME}"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    if not candidates:
        raise SystemExit(
            f"error: no {LIBRARY_NAME} under {build_root}/*/tests/fixtures; build the fixtures "
            "(cmake -DAOTC_BUILD_TESTS=ON) or pass --library"
        )
    return candidates[0]


def make_module(seed: int):  # -> torch.nn.Module
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def write_package(library: Path, output: Path, seed: int, batch: int) -> None:
    import torch

    sys.path.insert(0, str(REPO_ROOT))  # packager from this checkout if not installed
    from packager import Constant, PackageWriter, Sample

    if not BATCH_RANGE[0] <= batch <= BATCH_RANGE[1]:
        raise SystemExit(f"error: --batch must be in {list(BATCH_RANGE)}, got {batch}")
    module = make_module(seed)
    state = module.state_dict()
    if {k: list(v.shape) for k, v in state.items()} != CONSTANT_SHAPES:
        raise SystemExit(
            f"error: unexpected state_dict {list(state)}: the library expects {CONSTANT_SHAPES}"
        )
    x = torch.randn(batch, 8)
    with torch.no_grad():
        expected = module(x)
    constants = [
        Constant(name, "float32", list(t.shape), t.detach().contiguous().numpy())
        for name, t in state.items()
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    with PackageWriter(output) as writer:
        writer.add_model(
            name="mlp_demo",
            library=library,
            inputs=[{"name": "x", "dtype": "float32", "shape": ["s0", 8]}],
            outputs=[{"name": "out", "dtype": "float32", "shape": ["s0", 4]}],
            target={"device": "cpu", "isa": "x86-64", "arch": None, "min_driver": 0},
            abi={"major": 1, "minor": 0},
            constants=constants,
            samples_inputs=[Sample("float32", list(x.shape), x.numpy())],
            samples_outputs=[Sample("float32", list(expected.shape), expected.numpy())],
            producer={"torch": torch.__version__, "script": "scripts/make_demo_package.py"},
            metadata={
                "description": "nn.Sequential(Linear(8, 16), ReLU(), Linear(16, 4)), "
                "hand-written library (tests/fixtures/mlp_demo.cc)",
                "seed": seed,
                "dynamic_dims": {"s0": list(BATCH_RANGE)},
            },
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--library", type=Path, help=f"path of {LIBRARY_NAME} (default: search build/)"
    )
    parser.add_argument("--output", "-o", type=Path, default=Path("mlp_demo.pt2"))
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed (default 0)")
    parser.add_argument("--batch", type=int, default=4, help="sample batch size (default 4)")
    args = parser.parse_args(argv)
    library = args.library or find_library(REPO_ROOT / "build")
    if not library.is_file():
        raise SystemExit(f"error: {library} is not a file")
    write_package(library, args.output, args.seed, args.batch)
    print(f"wrote {args.output} (library {library})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
