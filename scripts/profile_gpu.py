"""Per-kernel GPU time of aotc packages and of eager PyTorch, at the
benchmark's CUDA sizes (scripts/bench.py), from torch.profiler's CUDA trace:

    python3 scripts/profile_gpu.py gpt transformer [--runs 10] [--top 14]

For each model: aotc's kernels (named as in the package: kernel3, extern2)
with their time per run and share, then eager's top kernels. Kernel names map
to model lines through `aotc inspect PKG --kernel extern2:0`. The runtime's
own per-kernel timing mode (CUDA events, issue 10) does not exist yet; this
is the stopgap that found gpt's slow GEMM epilogue and the transformer's
in-projection on the H200.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402

from aot.options import ExportOptions  # noqa: E402
from aot.testing import AOTCRunnerUtil  # noqa: E402


def kernel_times(fn: Callable[[], object], runs: int) -> collections.Counter[str]:
    """GPU microseconds per kernel name over |runs| calls of |fn|."""
    from torch.profiler import ProfilerActivity, profile

    totals: collections.Counter[str] = collections.Counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name] += event.device_time
    return totals


def print_table(title: str, totals: collections.Counter[str], runs: int, top: int) -> None:
    whole = sum(totals.values())
    print(f"{title}: {whole / runs / 1000:.3f} ms of kernels per run")
    for name, us in totals.most_common(top):
        print(f"  {name[:60]:60s} {us / runs / 1000:8.3f} ms {100 * us / whole:5.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", choices=sorted(bench.CUDA_SIZES))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA GPU visible to torch")
    for name in args.models:
        module = bench.cuda_module(name)
        inputs = bench.random_inputs(bench.cuda_input_specs(name))
        options = ExportOptions(device="cuda", arch=bench.cuda_arch())
        compiled = AOTCRunnerUtil.load(
            AOTCRunnerUtil.compile(module, inputs, options), device="cuda"
        )
        systems = {"aotc": compiled, "eager": module}
        with torch.no_grad():
            for title, system in systems.items():

                def fn(system: Callable[..., object] = system, args: tuple = inputs) -> object:
                    return system(*args)

                for _ in range(5):  # warm-up: module loads, cuBLAS handles
                    fn()
                print_table(f"== {name} {title}", kernel_times(fn, args.runs), args.runs, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
