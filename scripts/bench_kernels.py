#!/usr/bin/env python3
"""aotc's CPU templates (GEMM, convolution, attention) and the cnn and gpt
examples against eager PyTorch and torch.compile, measured in one run.

Each case is a model compiled into a package and run through the C++
runtime (AOTCRunnerUtil); eager and torch.compile run the same model in this
process with the same thread count. Inputs are fresh random tensors, three
sets rotated between calls; every case is checked against eager before it is
timed. Prints median milliseconds and aotc's ratio to eager (lower is
better) next to issue 9's target, and exits 1 when a target is missed.

    python scripts/bench_kernels.py [--quick] [--only gemm,conv,attention,examples]
                                    [--dtype float32|bfloat16] [--threads N] [--no-compile]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aot.testing import AOTCRunnerUtil, median_ms  # noqa: E402

Inputs = Callable[[torch.dtype], tuple[torch.Tensor, ...]]


@dataclass
class Case:
    group: str
    name: str
    model: Callable[[], nn.Module]
    inputs: Inputs
    target: float | None  # aotc / eager at most this; None: reported only
    quick: bool = False


class MatMul(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class Attention(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


def randn(*sizes: int) -> Inputs:
    return lambda dtype: (torch.randn(*sizes, dtype=dtype),)


def gemm(m: int, n: int, k: int, target: float, quick: bool = False) -> Case:
    return Case(
        "gemm",
        f"{m} x {n} x {k}",
        MatMul,
        lambda dtype: (torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)),
        target,
        quick,
    )


def conv(c_in: int, c_out: int, size: int, batch: int, target: float | None, **kw: int) -> Case:
    kernel, stride = kw.get("kernel", 3), kw.get("stride", 1)
    groups = kw.get("groups", 1)
    desc = f"{kernel}x{kernel}/{stride} {c_in}->{c_out} {size}x{size} n{batch}"
    if groups > 1:
        desc += f" g{groups}"
    return Case(
        "conv",
        desc,
        lambda: nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups),
        randn(batch, c_in, size, size),
        target,
        kw.get("quick", False),
    )


def attention(b: int, h: int, length: int, d: int, causal: bool, quick: bool = False) -> Case:
    shape = (b, h, length, d)
    return Case(
        "attention",
        f"{list(shape)}{' causal' if causal else ''}",
        lambda: Attention(causal),
        lambda dtype: tuple(torch.randn(*shape, dtype=dtype) for _ in range(3)),
        None,
        quick,
    )


def example(name: str) -> Case:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        made = module.get_example_inputs()
        return tuple(t.to(dtype) if t.is_floating_point() else t for t in made)

    # The examples' inputs are small: fresh ones (token ids too) each draw.
    return Case("examples", name, module.get_model, inputs, 1.0, quick=True)


CASES = [
    gemm(1024, 1024, 1024, 2.0),
    *(gemm(m, 4096, 4096, 2.0, quick=m == 8) for m in (1, 2, 4, 8, 16)),
    gemm(1000, 1000, 1000, 2.5),
    gemm(333, 777, 555, 2.5, quick=True),
    conv(64, 64, 56, 8, 2.0),
    conv(128, 128, 28, 8, 2.0, quick=True),
    conv(64, 128, 56, 8, None, stride=2),
    conv(256, 64, 56, 8, None, kernel=1),
    conv(3, 64, 224, 1, None, kernel=7, stride=2),
    conv(32, 32, 112, 1, None, groups=32),
    attention(1, 8, 1024, 64, causal=True, quick=True),
    attention(1, 8, 1024, 64, causal=False),
    attention(1, 8, 4096, 64, causal=True),
    attention(2, 4, 32, 32, causal=True),
    example("cnn"),
    example("gpt"),
]


def check(
    case: Case, model: nn.Module, got: torch.Tensor, inputs: tuple[torch.Tensor, ...]
) -> None:
    """aotc's output against eager's: float32 within 1e-3; bfloat16, whose
    rounding points differ from eager's, no further from the float32 model
    than twice eager's own bfloat16 error (plus 1e-2)."""
    with torch.no_grad():
        expected = model(*inputs)
        if got.dtype != torch.bfloat16:
            torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
            return
        reference = case.model().eval().float()
        reference.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
        exact = reference(*(t.float() if t.is_floating_point() else t for t in inputs))
    ours = (got.float() - exact).abs().max().item()
    eager = (expected.float() - exact).abs().max().item()
    if ours > 2 * eager + 1e-2:
        raise AssertionError(f"{case.name}: bfloat16 error {ours:.3g}, eager's {eager:.3g}")


def bench(case: Case, dtype: torch.dtype, repeats: int, compile_too: bool) -> dict[str, float]:
    model = case.model().eval()
    if any(p.is_floating_point() for p in model.parameters()):
        model = model.to(dtype)
    rotation = [case.inputs(dtype) for _ in range(3)]
    out: dict[str, float] = {}
    path = AOTCRunnerUtil.compile(model, rotation[0])
    try:
        compiled = AOTCRunnerUtil.load(path)
        with torch.no_grad():
            check(case, model, compiled(*rotation[1]), rotation[1])
            out["aotc"] = median_ms(lambda i: compiled(*rotation[i % 3]), repeats)
            out["eager"] = median_ms(lambda i: model(*rotation[i % 3]), repeats)
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    if compile_too:
        try:
            fast = torch.compile(model)
            with torch.no_grad():
                out["compile"] = median_ms(lambda i: fast(*rotation[i % 3]), repeats)
        except Exception as e:  # torch.compile needs a C++ toolchain: report, go on
            print(f"  torch.compile failed: {type(e).__name__}: {e}", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few cases, fewer repeats")
    parser.add_argument(
        "--only", default="", help="comma-separated groups: gemm,conv,attention,examples"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = groups - {c.group for c in CASES}
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if (not groups or c.group in groups) and (c.quick or not args.quick)]
    repeats = 5 if args.quick else 15
    print(f"{args.dtype}, {args.threads} threads, torch {torch.__version__}")
    widths = (10, 34, 9, 10, 9, 10, 8)
    header = ("group", "case", "eager ms", "compile ms", "aotc ms", "aotc/eager", "target")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    missed = 0
    for case in cases:
        r = bench(case, dtype, repeats, not args.no_compile)
        ratio = r["aotc"] / r["eager"]
        miss = case.target is not None and ratio > case.target
        missed += miss
        compiled = f"{r['compile']:10.3f}" if "compile" in r else f"{'-':>10}"
        target = f"{case.target:.1f}x" if case.target is not None else "-"
        print(
            f"{case.group:>10}  {case.name:>34}  {r['eager']:9.3f}  {compiled}  {r['aotc']:9.3f}  "
            f"{ratio:10.2f}  {target:>8}{'  MISSED' if miss else ''}",
            flush=True,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
