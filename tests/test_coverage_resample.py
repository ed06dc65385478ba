"""Resampling end to end (aot/lowering/resample.py): upsample nearest,
nearest-exact, linear, bilinear, trilinear, bicubic, the antialiased
variants and grid_sampler 2-d/3-d, exported, compiled, run through the C++
runtime and compared with eager on fresh random inputs.

torch.export's default table decomposes most upsample ops into index math;
the tests keep them whole (KEPT_OPS) so that each lowering is what runs.
float32 results are compared with check_model's default tolerances; bfloat16
ones with eager's float32 result rounded to bfloat16 ([Note: resample
indices]: the kernel computes in float32 and rounds once), within one
bfloat16 ulp. Each test compiles one model holding many cases.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sympy
import torch
import torch.nn.functional as F
from torch.export import Dim

from aot.frontend import decompositions
from aot.lowering.resample import Axis, index_pattern, nearest_table
from aot.testing import AOTCRunnerUtil, check_model, check_model_with_multiple_inputs

aten = torch.ops.aten

Case = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def test_upsample_ops_reach_lowering() -> None:
    """Export keeps the upsample ops whole, so their lowerings (not the
    decompositions) are what these tests run."""
    table = decompositions.aotc_decomposition_table()
    for op in (aten.upsample_bicubic2d.vec, aten.upsample_trilinear3d.vec):
        assert op not in table


def interp(rank: int, **kwargs: object) -> Case:
    """F.interpolate of the rank-|rank| input. The rank-4 input is read
    through a pointwise op (exact in bfloat16, so that the float32 reference
    sees the same values), which linear and cubic realize, nearest inlines."""
    if rank == 4:
        return lambda t: F.interpolate(t["x4"] * 2, **kwargs)
    return lambda t: F.interpolate(t[f"x{rank}"], **kwargs)


NEAREST_CASES = [
    interp(3, size=9, mode="nearest"),
    interp(3, scale_factor=0.5, mode="nearest"),
    interp(3, size=5, mode="nearest-exact"),
    interp(4, scale_factor=2, mode="nearest"),
    interp(4, size=(5, 9), mode="nearest"),
    interp(4, size=(3, 2), mode="nearest"),
    interp(4, scale_factor=(1.7, 0.6), mode="nearest"),
    interp(4, scale_factor=1.7, mode="nearest", recompute_scale_factor=True),
    interp(4, scale_factor=3, mode="nearest-exact"),
    interp(4, size=(5, 3), mode="nearest-exact"),
    interp(4, scale_factor=0.37, mode="nearest-exact"),
    interp(5, size=(3, 8, 5), mode="nearest"),
    interp(5, scale_factor=(2, 1, 0.5), mode="nearest-exact"),
]

LINEAR_CASES = [
    interp(3, size=11, mode="linear", align_corners=False),
    interp(3, size=4, mode="linear", align_corners=True),
    interp(3, scale_factor=1.7, mode="linear"),
    interp(3, size=1, mode="linear", align_corners=True),
    interp(4, size=(9, 13), mode="bilinear", align_corners=False),
    interp(4, size=(9, 13), mode="bilinear", align_corners=True),
    interp(4, size=(3, 4), mode="bilinear", align_corners=False),
    interp(4, size=(6, 3), mode="bilinear", align_corners=True),  # one dim unchanged
    interp(4, scale_factor=(1.5, 0.7), mode="bilinear"),
    interp(4, scale_factor=2.3, mode="bilinear", recompute_scale_factor=True),
    interp(5, size=(5, 3, 9), mode="trilinear", align_corners=False),
    interp(5, size=(5, 3, 9), mode="trilinear", align_corners=True),
    interp(5, scale_factor=(0.5, 1.5, 2), mode="trilinear"),
]

BICUBIC_CASES = [
    interp(4, size=(9, 13), mode="bicubic", align_corners=False),
    interp(4, size=(9, 13), mode="bicubic", align_corners=True),
    interp(4, size=(3, 4), mode="bicubic", align_corners=False),
    interp(4, size=(2, 5), mode="bicubic", align_corners=True),
    interp(4, scale_factor=(1.3, 0.6), mode="bicubic"),
]

ANTIALIAS_CASES = [
    interp(4, size=(3, 4), mode="bilinear", antialias=True),
    interp(4, size=(2, 7), mode="bilinear", antialias=True, align_corners=True),
    interp(4, size=(9, 13), mode="bilinear", antialias=True),
    interp(4, scale_factor=0.3, mode="bilinear", antialias=True),
    interp(4, size=(3, 4), mode="bicubic", antialias=True),
    interp(4, size=(9, 2), mode="bicubic", antialias=True, align_corners=True),
]


def sample(dims: int, mode: str, padding: str, align: bool) -> Case:
    """F.grid_sample of the rank-(dims + 2) input on its grid."""
    x, g = ("x4", "g4") if dims == 2 else ("x5", "g5")
    kw = {"mode": mode, "padding_mode": padding, "align_corners": align}
    return lambda t: F.grid_sample(t[x], t[g], **kw)


PADDINGS = ("zeros", "border", "reflection")
GRID_CASES = [
    sample(dims, mode, padding, align)
    for padding in PADDINGS
    for align in (False, True)
    for dims, mode in [
        (2, "bilinear"),
        (2, "nearest"),
        (2, "bicubic"),
        (3, "bilinear"),
        (3, "nearest"),
    ]
]
# bfloat16 checks the rounding: each mode once, paddings and align_corners spread.
GRID_CASES_BF16 = [
    sample(2, "bilinear", "zeros", False),
    sample(2, "nearest", "border", True),
    sample(2, "bicubic", "reflection", False),
    sample(3, "bilinear", "reflection", True),
    sample(3, "nearest", "zeros", False),
]


class Cases(torch.nn.Module):
    """One output per case, each reading the inputs it names."""

    NAMES = ("x3", "x4", "x5", "g4", "g5")

    def __init__(self, cases: list[Case]) -> None:
        super().__init__()
        self.cases = cases

    def forward(self, *tensors: torch.Tensor) -> tuple:
        named = dict(zip(self.NAMES, tensors, strict=True))
        return tuple(fn(named) for fn in self.cases)


def inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """x3, x4, x5 and grids for x4 and x5 reaching past [-1, 1] (padding
    matters), with exact corners and edges in one row."""
    g4, g5 = torch.rand(2, 6, 4, 2) * 2.6 - 1.3, torch.rand(1, 3, 4, 2, 3) * 2.6 - 1.3
    g4[0, 0, :, :] = torch.tensor([-1.0, 1.0])
    xs = [torch.randn(2, 3, 6), torch.randn(2, 3, 6, 7), torch.randn(1, 2, 4, 5, 6)]
    return tuple(t.to(dtype) for t in (*xs, g4, g5))


def check_rounds_once(model: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """bfloat16 results equal eager's float32 result rounded, within one ulp."""
    actual = AOTCRunnerUtil.run(model, args)
    with torch.no_grad():
        expected = model(*[a.float() for a in args])
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.dtype == torch.bfloat16, f"output {k}: {a.dtype}"
        torch.testing.assert_close(
            a.float(), e.bfloat16().float(), atol=1e-5, rtol=2**-7, msg=lambda m, k=k: f"{k}: {m}"
        )


def test_resample_float32() -> None:
    cases = NEAREST_CASES + LINEAR_CASES + BICUBIC_CASES + ANTIALIAS_CASES + GRID_CASES
    check_model(None, Cases(cases).eval(), inputs(torch.float32))


def test_resample_bfloat16_rounds_once() -> None:
    cases = NEAREST_CASES + LINEAR_CASES + BICUBIC_CASES + GRID_CASES_BF16
    check_rounds_once(Cases(cases).eval(), inputs(torch.bfloat16))


class DynamicUpsample(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (
            F.interpolate(x, scale_factor=2, mode="nearest"),
            F.interpolate(x, scale_factor=2, mode="bilinear"),
            F.interpolate(x, size=(6, 7), mode="bilinear", align_corners=True),
            F.interpolate(x, size=(5, 4), mode="bicubic"),
        )


def test_dynamic_sizes() -> None:
    """Scales follow the run-time sizes (in / out computed in the kernel)."""
    dims = {0: Dim("n", min=1, max=8), 2: Dim("h", min=2, max=64), 3: Dim("w", min=2, max=64)}
    shapes = [(2, 3, 5, 6), (1, 3, 9, 4), (3, 3, 7, 7)]
    check_model_with_multiple_inputs(
        None,
        DynamicUpsample().eval(),
        [(torch.randn(s),) for s in shapes],
        dynamic_shapes=(dims,),
    )


@pytest.mark.parametrize("exact", [False, True])
def test_nearest_index_patterns(exact: bool) -> None:
    """Static nearest indices equal eager's, and the patterns found for them
    (copies, strides, o // k) give the same indices."""
    o = sympy.Symbol("o", integer=True, nonnegative=True)
    mode = "nearest-exact" if exact else "nearest"
    for n_in in range(1, 12):
        for n_out in range(1, 25):
            src = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in)
            want = F.interpolate(src, size=n_out, mode=mode).flatten().long().tolist()
            table = nearest_table(Axis(sympy.Integer(n_in), sympy.Integer(n_out), None), exact)
            assert table == want, (n_in, n_out)
            pattern = index_pattern(table, o)
            if pattern is not None:
                assert [int(pattern.subs(o, i)) for i in range(n_out)] == table
