"""The Triton scan, sort and scatter templates (aot/codegen/triton/templates/
scan.py, sort.py, scatter.py) run in Triton's interpreter against eager, and
every kernel they generate here compiled offline for sm_90.

The interpreter runs programs one after another, so atomics are ordered
here; on a GPU float accumulation order varies ([Note: GPU scatter order])."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
from triton_interp import InterpretedIndexError, compile_and_interpret

from aot.codegen.triton.launch import TritonCodegenError, TritonKernel

GENERATED: dict[str, list[TritonKernel]] = {}


class Fn(torch.nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> Any:
        return self.fn(*xs)


def _run(case: str, fn: Callable[..., Any], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    outs, _, launches = compile_and_interpret(Fn(fn).eval(), inputs)
    GENERATED[case] = [k for ks in launches for k in ks]
    return outs


def _expected(fn: Callable[..., Any], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    ref = fn(*[t.clone() for t in inputs])
    return list(ref) if isinstance(ref, tuple) else [ref]


def _tol(dtype: torch.dtype) -> dict[str, float]:
    if dtype == torch.bfloat16:
        return {"atol": 6e-2, "rtol": 2e-2}
    if dtype == torch.float32:
        return {"atol": 1e-5, "rtol": 1e-5}
    return {"atol": 0.0, "rtol": 0.0}


def _ties(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Few distinct values (ties), never all zeros."""
    return torch.randint(-3, 4, shape).to(dtype)


# --------------------------------------------------------------------------- #
# scans                                                                        #
# --------------------------------------------------------------------------- #

torch.manual_seed(0)
_SCANS = {
    "cumsum_f32_dim1": (lambda x: torch.cumsum(x, 1), [torch.randn(3, 5, 4)]),
    "cumsum_f32_long_row": (lambda x: torch.cumsum(x, -1), [torch.randn(2, 2500)]),
    "cumsum_i32_to_i64_dim0": (lambda x: torch.cumsum(x, 0), [_ties((9, 4), torch.int32)]),
    "cumsum_bf16": (lambda x: torch.cumsum(x, -1), [torch.randn(4, 33).bfloat16()]),
    "cumprod_f32_dim0": (lambda x: torch.cumprod(x, 0), [torch.rand(6, 5) + 0.5]),
    "cumprod_f64_transposed": (
        lambda x: torch.cumprod(x.t(), 1),
        [torch.rand(5, 6).double() + 0.5],
    ),
    "logcumsumexp_f32": (lambda x: torch.logcumsumexp(x, 1), [torch.randn(4, 7) * 3]),
    "logcumsumexp_f64_inf": (
        lambda x: torch.logcumsumexp(x, 0),
        [torch.tensor([[float("-inf"), 1.0], [float("-inf"), float("inf")], [2.0, 0.5]]).double()],
    ),
    "cummax_f32_ties_nan": (lambda x: torch.cummax(x, 1), [_ties((4, 9))]),
    "cummin_i64_dim0": (lambda x: torch.cummin(x, 0), [_ties((9, 4), torch.int64)]),
    "cummax_long_row": (lambda x: torch.cummax(x, -1), [_ties((2, 2300))]),
}
_SCANS["cummax_f32_ties_nan"][1][0][1, 3] = float("nan")
_SCANS["cummax_f32_ties_nan"][1][0][2, 0] = float("nan")
_SCANS["cummax_f32_ties_nan"][1][0][2, 5] = float("nan")
_SCANS["cummax_long_row"][1][0][1, 1500] = float("nan")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy on inf - inf, masked off
@pytest.mark.parametrize("case", list(_SCANS))
def test_scan(case: str) -> None:
    fn, inputs = _SCANS[case]
    outs = _run(case, fn, inputs)
    expected = _expected(fn, inputs)
    for out, ref in zip(outs, expected, strict=True):
        tol = _tol(ref.dtype)
        if case == "cumsum_f32_long_row":  # a tree sum of 2500 terms in float32
            tol = {"atol": 1e-4, "rtol": 1e-4}
        torch.testing.assert_close(out, ref, equal_nan=True, **tol)


class _DynamicScans(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cumsum(x, 1), torch.cummax(x, 0)[1]


def test_scan_dynamic_sizes() -> None:
    """Dynamic line count and row length: sizes passed at run time, rows looped."""
    from torch.export import Dim

    x = torch.randn(5, 7)
    dims = ({0: Dim("a", min=2, max=64), 1: Dim("b", min=2, max=4096)},)
    outs, _, launches = compile_and_interpret(_DynamicScans().eval(), [x], dynamic_shapes=dims)
    GENERATED["scan_dynamic"] = [k for ks in launches for k in ks]
    assert any(a.kind == "size" for k in GENERATED["scan_dynamic"] for a in k.args)
    for out, ref in zip(outs, _DynamicScans()(x), strict=True):
        torch.testing.assert_close(out, ref)


# --------------------------------------------------------------------------- #
# sorts                                                                        #
# --------------------------------------------------------------------------- #

_NANS = _ties((3, 5, 6))
_NANS[0, 1, 2] = float("nan")
_NANS[2, 2, 2] = float("nan")
_NANS[2, 3, 2] = float("nan")
_NANS[1, 0, 0] = -0.0

# (fn, inputs, compare indices too)
_SORTS = {
    "sort_stable_dim1_nan": (lambda x: torch.sort(x, dim=1, stable=True), [_NANS], True),
    "sort_descending_stable_nan": (
        lambda x: torch.sort(x, dim=-1, descending=True, stable=True),
        [_NANS],
        True,
    ),
    "sort_i32_dim0": (
        lambda x: torch.sort(x, dim=0, stable=True),
        [_ties((7, 3), torch.int32)],
        True,
    ),
    "sort_bf16_unstable": (lambda x: torch.sort(x, -1), [torch.randn(2, 20).bfloat16()], False),
    "sort_i64_descending": (
        lambda x: torch.sort(x, dim=1, descending=True, stable=True),
        [_ties((3, 11), torch.int64) * 2**40],
        True,
    ),
    "topk_largest_dim1": (lambda x: torch.topk(x, 3, 1), [torch.randn(3, 7, 4)], True),
    "topk_smallest_f64": (
        lambda x: torch.topk(x, 2, -1, largest=False),
        [torch.randn(5, 9).double()],
        True,
    ),
    "topk_ties_values": (lambda x: torch.topk(x, 4, -1), [_ties((4, 10))], False),
    "kthvalue_dim1": (lambda x: torch.kthvalue(x, 3, 1), [torch.randn(3, 7, 4)], True),
    "kthvalue_i32": (lambda x: torch.kthvalue(x, 2, 0), [torch.randperm(8).to(torch.int32)], True),
    "median_dim1_ties_nan": (lambda x: torch.median(x, 1), [_NANS], True),
    "nanmedian_dim2": (lambda x: torch.nanmedian(x, 2, keepdim=True), [_NANS], True),
    "median_all": (lambda x: torch.median(x), [torch.randn(5, 7)], True),
    "median_all_nan": (lambda x: torch.median(x), [_NANS], True),
    "nanmedian_all_bf16": (lambda x: torch.nanmedian(x), [_NANS.bfloat16()], True),
    "median_all_nan_bf16": (lambda x: torch.median(x), [_NANS.bfloat16()], True),
    "mode_dim1": (lambda x: torch.mode(x, 1), [_ties((4, 9, 3))], True),
    "mode_i64": (lambda x: torch.mode(x, -1), [_ties((5, 12), torch.int64)], True),
}


@pytest.mark.parametrize("case", list(_SORTS))
def test_sort(case: str) -> None:
    fn, inputs, indices = _SORTS[case]
    outs = _run(case, fn, inputs)
    expected = _expected(fn, inputs)
    torch.testing.assert_close(outs[0], expected[0], equal_nan=True, atol=0, rtol=0)
    if len(outs) > 1:
        if indices:
            torch.testing.assert_close(outs[1], expected[1], atol=0, rtol=0)
        else:  # ties: any index holding the value
            picked = torch.gather(inputs[0], -1, outs[1])
            torch.testing.assert_close(picked, outs[0], atol=0, rtol=0)


def test_topk_bf16_nan_is_canonical() -> None:
    x = torch.randn(2, 8).bfloat16()
    x[1, 3] = -float("nan")
    fn = lambda x: torch.topk(x, 2, -1)  # noqa: E731
    outs = _run("topk_bf16_nan", fn, [x])
    values, _ = fn(x)
    assert torch.equal(outs[0].view(torch.int16), values.view(torch.int16))


def test_sort_row_too_long_is_refused() -> None:
    with pytest.raises(TritonCodegenError, match="longer than one Triton program sorts"):
        _run("sort_long", lambda x: torch.sort(x, -1), [torch.randn(2, 16385)])


# --------------------------------------------------------------------------- #
# scatters                                                                     #
# --------------------------------------------------------------------------- #

_X = torch.randn(4, 5)
_INDEX = torch.randint(0, 4, (3, 5))
_SRC = torch.randn(3, 5)
_UNIQUE = torch.stack([torch.randperm(4)[:3] for _ in range(5)], 1)

_SCATTERS = {
    "scatter_unique": (lambda x, i, s: x.scatter(0, i, s), [_X, _UNIQUE, _SRC]),
    "scatter_value_dim1": (lambda x, i: x.scatter(1, i, 2.5), [_X, _INDEX[:, :2].contiguous()]),
    "scatter_add": (lambda x, i, s: x.scatter_add(0, i, s), [_X, _INDEX, _SRC]),
    "scatter_add_bf16": (
        lambda x, i, s: x.scatter_add(0, i, s),
        [_X.bfloat16(), _INDEX, _SRC.bfloat16()],
    ),
    "scatter_sum_f64": (
        lambda x, i, s: x.scatter_reduce(0, i, s, "sum"),
        [_X.double(), _INDEX, _SRC.double()],
    ),
    "scatter_prod": (lambda x, i, s: x.scatter_reduce(0, i, s, "prod"), [_X, _INDEX, _SRC]),
    "scatter_amax_no_self": (
        lambda x, i, s: x.scatter_reduce(0, i, s, "amax", include_self=False),
        [_X, _INDEX, _SRC],
    ),
    "scatter_amin_nan": (
        lambda x, i, s: x.scatter_reduce(0, i, s, "amin"),
        [_X, _INDEX, torch.where(_SRC > 1, float("nan"), _SRC)],
    ),
    "scatter_amax_i64_dim1": (
        lambda x, i, s: x.scatter_reduce(1, i, s, "amax"),
        [_ties((5, 4), torch.int64), _INDEX.t().contiguous(), _ties((5, 3), torch.int64)],
    ),
    "scatter_prod_i32_no_self": (
        lambda x, i, s: x.scatter_reduce(0, i, s, "prod", include_self=False),
        [_ties((4, 5), torch.int32), _INDEX, _ties((3, 5), torch.int32)],
    ),
    # More index positions than indexing.MAX_REDUCTION_INDICES: the extern kernel.
    "index_put_accumulate": (
        lambda x, i, v: x.index_put((i,), v, accumulate=True),
        [torch.randn(6, 5), torch.randint(-6, 6, (20,)), torch.randn(20, 5)],
    ),
    "index_put_unique": (
        lambda x, i, v: x.index_put((i,), v),
        [torch.randn(24, 3), torch.randperm(24)[:20], torch.randn(20, 3)],
    ),
    "index_put_two_indices": (
        lambda x, i, j, v: x.index_put((i, j), v, accumulate=True),
        [
            torch.randn(6, 5),
            torch.randint(0, 6, (30,)),
            torch.randint(0, 5, (30,)),
            torch.randn(30),
        ],
    ),
    "index_put_accumulate_bf16": (
        lambda x, i, v: x.index_put((i,), v, accumulate=True),
        [torch.randn(6, 5).bfloat16(), torch.randint(-6, 6, (20,)), torch.randn(20, 5).bfloat16()],
    ),
    "index_put_accumulate_i64": (
        lambda x, i, v: x.index_put((i,), v, accumulate=True),
        [_ties((6, 5), torch.int64), torch.randint(-6, 6, (20,)), _ties((20, 5), torch.int64)],
    ),
}


@pytest.mark.parametrize("case", list(_SCATTERS))
def test_scatter(case: str) -> None:
    fn, inputs = _SCATTERS[case]
    outs = _run(case, fn, inputs)
    (expected,) = _expected(fn, inputs)
    torch.testing.assert_close(outs[0], expected, equal_nan=True, **_tol(expected.dtype))
    names = [k.name for k in GENERATED[case]]
    assert any(name.endswith("_copy") for name in names), names  # the extern kernel ran


def test_scatter_index_out_of_range_is_refused() -> None:
    with pytest.raises(
        InterpretedIndexError, match=r"index \d+ out of range \[0, 4\) for scatter_add: index"
    ):
        _run("scatter_bad", lambda x, i, s: x.scatter_add(0, i, s), [_X, _INDEX + 2, _SRC])


def test_index_put_index_out_of_range_is_refused() -> None:
    index = torch.randint(0, 6, (20,))
    index[7] = -9
    with pytest.raises(InterpretedIndexError, match=r"index -9 out of range \[0, 6\)"):
        _run(
            "index_put_bad",
            lambda x, i, v: x.index_put((i,), v, accumulate=True),
            [torch.randn(6, 5), index, torch.randn(20, 5)],
        )


def test_scatter_mean_is_refused() -> None:
    with pytest.raises(TritonCodegenError, match="mean"):
        _run("scatter_mean", lambda x, i, s: x.scatter_reduce(0, i, s, "mean"), [_X, _INDEX, _SRC])


# --------------------------------------------------------------------------- #
# offline compilation                                                          #
# --------------------------------------------------------------------------- #


def _renamed(kernel: TritonKernel, name: str) -> TritonKernel:
    source = kernel.source.replace(f"def {kernel.name}(", f"def {name}(")
    return dataclasses.replace(kernel, name=name, source=source)


def test_generated_kernels_compile_for_sm90() -> None:
    """Every kernel the tests above generated (each case's, when this runs
    alone) compiles for an H100/H200, in one parallel call."""
    all_cases = {**_SCANS, **{k: v[:2] for k, v in _SORTS.items()}, **_SCATTERS}
    for case, (fn, inputs) in all_cases.items():
        if case not in GENERATED:
            _run(case, fn, inputs)
    from aot.build.triton_build import compile_kernels

    unique: dict[tuple[str, str], TritonKernel] = {}
    for case, kernels in GENERATED.items():
        for kernel in kernels:
            key = (kernel.source, repr(sorted(kernel.constexprs.items())) + str(kernel.num_warps))
            unique.setdefault(key, _renamed(kernel, f"{kernel.name}_{case}"))
    compiled = compile_kernels(list(unique.values()), "sm_90")
    assert len(compiled) == 2 * len(unique)
