"""Lowerings of the sort family to ExternKernel nodes: sort (sort.default,
sort.stable; argsort and msort reach lowering as sort), topk, kthvalue,
median and nanmedian (per dim and of all elements) and mode.

[Note: sort lowering] Each op becomes one ExternKernel whose only input is
the realized operand (buffers and strided views are read in place: a
transposed or expanded input costs no copy), with the dim normalised to
[0, rank) in params["dim"]. A 0-d operand is passed as a 1-d view of its
one element (its outputs keep eager's 0-d sizes). Outputs are contiguous
(values in the input's dtype, int64 indices); the kernels reproduce eager's
CPU algorithms step for step, so indices match eager for ties too
([Note: sort kernel numerics] in aot/codegen/cpp/include/aotc_cpu_sort.h;
operands per kind in aot/codegen/cpp/extern_sort.py).

Dtypes: every dtype the C++ type table has (float32, float64, bfloat16, the
integers, bool) where eager's CPU kernel takes it: topk, kthvalue, median
and nanmedian refuse bool as eager does. float16 has no kernel element type
and raises NotImplementedError. Invalid k and empty reductions fail at
lowering when sizes are static, else at run time (INVALID_ARGUMENT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, Layout, ReinterpretView, TensorValue
from .common import normalize_dim
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
Expr = sympy.Expr
Strided = Buffer | ReinterpretView

# Element types the sort kernels take (the ctypes of extern_calls).
SORT_DTYPES = (
    torch.float32,
    torch.float64,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)

# 1-d integer ascending sorts of this many elements or more are radix sorts
# (stable) in eager (fbgemm, SortingKernel.cpp's can_use_radix_sort).
RADIX_SORT_MIN = 32768


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.sort.default)(lower_sort)
    registry.register(aten.sort.stable)(lower_sort_stable)
    registry.register(aten.topk.default)(lower_topk)
    registry.register(aten.kthvalue.default)(lower_kthvalue)
    registry.register(aten.median.dim)(lower_median_dim)
    registry.register(aten.nanmedian.dim)(lower_nanmedian_dim)
    registry.register(aten.median.default)(lower_median)
    registry.register(aten.nanmedian.default)(lower_nanmedian)
    registry.register(aten.mode.default)(lower_mode)


# -- helpers ---------------------------------------------------------------------


def _operand(
    op: str, ctx: LoweringContext, x: TensorValue, dim: int, allow_bool: bool = True
) -> tuple[Strided, int, int]:
    """(x realized, 1-d if it is 0-d; dim normalised; x's rank)."""
    if x.dtype not in SORT_DTYPES or (x.dtype == torch.bool and not allow_bool):
        raise NotImplementedError(f"{op}: aotc's sort kernels do not take {x.dtype} inputs")
    rank = len(x.get_size())
    d = normalize_dim(int(dim), rank)
    rx = ctx.realize(x)
    if rank == 0:
        rx = _reshaped(rx, [sympy.Integer(1)], [sympy.Integer(1)])
    return rx, d, rank


def _reshaped(value: Strided, sizes: Sequence[Expr], strides: Sequence[Expr]) -> ReinterpretView:
    """|value|'s storage read with |sizes| and |strides| (same offset)."""
    if isinstance(value, ReinterpretView):
        buffer, offset = value.data, value.layout.offset
    else:
        buffer, offset = value, value.layout.offset
    return ReinterpretView(buffer, Layout(tuple(sizes), tuple(strides), offset))


def _known(expr: Any) -> int | None:
    expr = sympy.sympify(expr)
    return int(expr) if expr.is_number else None


def _reduced_sizes(sizes: list[Expr], dim: int, rank: int, keepdim: bool) -> list[Expr]:
    """Output sizes of a reduction along |dim| (0-d stays 0-d)."""
    if rank == 0:
        return []
    if keepdim:
        return [*sizes[:dim], sympy.Integer(1), *sizes[dim + 1 :]]
    return [*sizes[:dim], *sizes[dim + 1 :]]


def _check_nonempty(op: str, sizes: list[Expr], dim: int, rank: int) -> None:
    if rank > 0 and _known(sizes[dim]) == 0:
        raise ValueError(f"{op}: cannot reduce dimension {dim} of size 0 (no identity)")


def _reduction(
    op: str,
    kind: str,
    ctx: LoweringContext,
    x: TensorValue,
    dim: int,
    keepdim: bool,
    params: dict[str, Any],
    allow_bool: bool = False,
) -> tuple[Buffer, Buffer]:
    rx, d, rank = _operand(op, ctx, x, dim, allow_bool)
    sizes = x.get_size()
    _check_nonempty(op, sizes, d, rank)
    out = _reduced_sizes(sizes, d, rank, bool(keepdim))
    values, indices = ctx.extern(
        kind, [rx], [(out, x.dtype), (out, torch.int64)], {"dim": d, **params}
    )
    return values, indices


# -- sort ---------------------------------------------------------------------------


def _sort(
    ctx: LoweringContext, x: TensorValue, stable: bool, dim: int, descending: bool
) -> tuple[Buffer, Buffer]:
    rx, d, rank = _operand("sort", ctx, x, dim)
    # Eager returns the identity permutation for a stride-0 dim (all equal).
    stable = bool(stable) or rx.layout.strides[d] == 0
    integral = not x.dtype.is_floating_point and x.dtype != torch.bool
    params = {
        "dim": d,
        "descending": bool(descending),
        "stable": stable,
        "radix_1d": rank == 1 and integral and not descending,
    }
    sizes = x.get_size()
    values, indices = ctx.extern("sort", [rx], [(sizes, x.dtype), (sizes, torch.int64)], params)
    return values, indices


def lower_sort(
    ctx: LoweringContext, x: TensorValue, dim: int = -1, descending: bool = False
) -> tuple[Buffer, Buffer]:
    return _sort(ctx, x, False, dim, descending)


def lower_sort_stable(
    ctx: LoweringContext,
    x: TensorValue,
    *,
    stable: bool | None = None,
    dim: int = -1,
    descending: bool = False,
) -> tuple[Buffer, Buffer]:
    return _sort(ctx, x, bool(stable), dim, descending)


# -- topk, kthvalue -------------------------------------------------------------------


def lower_topk(
    ctx: LoweringContext,
    x: TensorValue,
    k: int | Expr,
    dim: int = -1,
    largest: bool = True,
    sorted: bool = True,
) -> tuple[Buffer, Buffer]:
    rx, d, rank = _operand("topk", ctx, x, dim, allow_bool=False)
    k = sympy.sympify(k)
    size = x.get_size()[d] if rank > 0 else sympy.Integer(1)
    known_k, known_n = _known(k), _known(size)
    if known_k is not None and (known_k < 0 or (known_n is not None and known_k > known_n)):
        raise ValueError(f"topk: k = {known_k} out of range for a dimension of size {size}")
    if rank == 0:  # eager copies the element whatever k (0 or 1) is
        out: list[Expr] = []
        k = sympy.Integer(1)
    else:
        out = [*x.get_size()[:d], k, *x.get_size()[d + 1 :]]
    params = {"dim": d, "k": k, "largest": bool(largest), "sorted": bool(sorted)}
    values, indices = ctx.extern("topk", [rx], [(out, x.dtype), (out, torch.int64)], params)
    return values, indices


def lower_kthvalue(
    ctx: LoweringContext, x: TensorValue, k: int | Expr, dim: int = -1, keepdim: bool = False
) -> tuple[Buffer, Buffer]:
    k = sympy.sympify(k)
    rank = len(x.get_size())
    if rank > 0:
        size = x.get_size()[normalize_dim(int(dim), rank)]
    else:
        size = sympy.Integer(1)
    known_k, known_n = _known(k), _known(size)
    if known_k is not None and (known_k < 1 or (known_n is not None and known_k > known_n)):
        raise ValueError(f"kthvalue: k = {known_k} out of range for a dimension of size {size}")
    return _reduction("kthvalue", "kthvalue", ctx, x, dim, keepdim, {"k": k})


# -- median, nanmedian, mode ------------------------------------------------------------


def lower_median_dim(
    ctx: LoweringContext, x: TensorValue, dim: int, keepdim: bool = False
) -> tuple[Buffer, Buffer]:
    return _reduction("median", "median", ctx, x, dim, keepdim, {"ignore_nan": False})


def lower_nanmedian_dim(
    ctx: LoweringContext, x: TensorValue, dim: int, keepdim: bool = False
) -> tuple[Buffer, Buffer]:
    return _reduction("nanmedian", "median", ctx, x, dim, keepdim, {"ignore_nan": True})


def _median_all(op: str, ctx: LoweringContext, x: TensorValue, ignore_nan: bool) -> Buffer:
    if x.dtype not in SORT_DTYPES or x.dtype == torch.bool:
        raise NotImplementedError(f"{op}: aotc's sort kernels do not take {x.dtype} inputs")
    flat = ctx.realize_contiguous(x)  # every element, in logical order
    numel = flat.layout.numel()
    view = _reshaped(flat, [numel], [sympy.Integer(1)])
    (out,) = ctx.extern("median_all", [view], [([], x.dtype)], {"ignore_nan": ignore_nan})
    return out


def lower_median(ctx: LoweringContext, x: TensorValue) -> Buffer:
    return _median_all("median", ctx, x, False)


def lower_nanmedian(ctx: LoweringContext, x: TensorValue) -> Buffer:
    return _median_all("nanmedian", ctx, x, True)


def lower_mode(
    ctx: LoweringContext, x: TensorValue, dim: int = -1, keepdim: bool = False
) -> tuple[Buffer, Buffer]:
    return _reduction("mode", "mode", ctx, x, dim, keepdim, {}, allow_bool=True)
