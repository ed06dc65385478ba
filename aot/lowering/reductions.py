"""Reduction lowerings: sum, mean, prod, amax/amin, max/min with indices,
argmax/argmin, any/all, var/std (one Welford reduction), softmax, log_softmax, logsumexp,
linalg_vector_norm.

[Note: reduction lowering] A reduction over |dims| of a value with |sizes|
becomes one Reduction node (always realized by ctx.reduce) whose ranges are
the kept dims in order and whose reduction_ranges are the reduced dims in
order; inner_fn rebuilds the full index from (index, rindex), so reduced dims
need not be contiguous or last. A 0-d input reduces over a range of 1.
bf16/fp16 values accumulate in float32 (src_dtype) and are cast back to the
result dtype; integer and bool sums accumulate in int64 like torch. keepdim
is a view of the reduced buffer. Ops built from several reductions (mean,
var, softmax) realize each reduction and read it back through a loader
broadcast over the full index; the scheduler fuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import (
    Buffer,
    ComputedBuffer,
    GenericView,
    Layout,
    Loader,
    Pointwise,
    Reduction,
    ReinterpretView,
    TensorValue,
)
from ..ir.symbols import product
from .common import compute_dtype, identity, is_float, normalize_dims, to_loader
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
FullIndexFn = Callable[[Any, Sequence[sympy.Expr]], Any]

# -- building blocks (norms.py uses them too) ----------------------------------------


def _full_index_fn(
    ndim: int, dims: Sequence[int], fn: FullIndexFn
) -> Callable[[Any, Sequence[sympy.Expr], Sequence[sympy.Expr]], Any]:
    """A reduction body (ops, index, rindex) calling fn(ops, full_index)."""
    kept = [d for d in range(ndim) if d not in dims]

    def inner_fn(ops: Any, index: Sequence[sympy.Expr], rindex: Sequence[sympy.Expr]) -> Any:
        full: list[sympy.Expr] = [sympy.Integer(0)] * ndim
        for d, i in zip(kept, index, strict=True):
            full[d] = i
        for d, r in zip(dims, rindex, strict=False):  # a 0-d input has one dummy r
            full[d] = r
        return fn(ops, full)

    return inner_fn


def _split_ranges(
    sizes: Sequence[sympy.Expr], dims: Sequence[int]
) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """(kept sizes, reduced sizes), a 0-d input reducing over a range of 1."""
    kept = [sizes[d] for d in range(len(sizes)) if d not in dims]
    return kept, [sizes[d] for d in dims] or [sympy.Integer(1)]


def make_reduction(
    ctx: LoweringContext,
    sizes: Sequence[sympy.Expr],
    dims: Sequence[int],
    reduction_type: str,
    fn: FullIndexFn,
    src_dtype: torch.dtype,
    dtype: torch.dtype,
) -> ComputedBuffer:
    """Realizes the |reduction_type| of fn(ops, full_index) (values in
    |src_dtype|) over |dims| of |sizes|; the buffer has the kept dims."""
    ranges, reduction_ranges = _split_ranges(sizes, dims)
    reduction = Reduction(
        ranges,
        dtype,
        reduction_ranges=reduction_ranges,
        reduction_type=reduction_type,
        inner_fn=_full_index_fn(len(sizes), dims, fn),
        src_dtype=src_dtype,
    )
    return ctx.reduce(reduction)


def broadcast_reduced(value: TensorValue, ndim: int, dims: Sequence[int]) -> Loader:
    """A loader over the full (unreduced) index of a value that has only the
    kept dims: reads the reduced result at the kept coordinates."""
    inner = value.make_loader()
    kept = [d for d in range(ndim) if d not in dims]

    def load(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return inner(ops, [full[d] for d in kept])

    return load


def keep_dims(
    value: TensorValue, sizes: Sequence[sympy.Expr], dims: Sequence[int], keepdim: bool
) -> TensorValue:
    """|value| (kept dims only) with the reduced dims back as size 1 if
    |keepdim|: a ReinterpretView of a buffer, else a GenericView."""
    if not keepdim or not dims:
        return value
    new_size = [sympy.Integer(1) if d in dims else s for d, s in enumerate(sizes)]
    if isinstance(value, Buffer) and value.layout.is_contiguous():
        return ReinterpretView(value, Layout.contiguous(new_size))
    kept = [d for d in range(len(sizes)) if d not in dims]
    return GenericView(value, new_size, lambda index: [index[d] for d in kept])


def count(sizes: Sequence[sympy.Expr], dims: Sequence[int]) -> sympy.Expr:
    """The number of elements reduced over |dims| (1 for a 0-d input)."""
    return product([sizes[d] for d in dims])


def map_reduced(value: TensorValue, dtype: torch.dtype, fn: Callable[[Any, Any], Any]) -> Pointwise:
    """A Pointwise over |value|'s shape: fn(ops, element in compute dtype),
    converted to |dtype|."""
    load = to_loader(value, compute_dtype(value.dtype))
    source = compute_dtype(value.dtype)

    def inner_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        out = fn(ops, load(ops, index))
        return out if dtype == source else ops.to_dtype(out, dtype)

    return Pointwise(value.get_size(), dtype, inner_fn)


def _dims(x: TensorValue, dim: int | Sequence[int] | None) -> list[int]:
    return normalize_dims(dim, len(x.get_size()))


def _simple(
    ctx: LoweringContext,
    x: TensorValue,
    dims: list[int],
    reduction_type: str,
    dtype: torch.dtype,
    src_dtype: torch.dtype,
) -> ComputedBuffer:
    load = to_loader(x, src_dtype)
    return make_reduction(ctx, x.get_size(), dims, reduction_type, load, src_dtype, dtype)


# -- sum, prod, mean -------------------------------------------------------------------


def _sum_dtype(x: TensorValue, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return x.dtype if is_float(x.dtype) else torch.int64


def _sum_like(reduction_type: str) -> Callable[..., TensorValue]:
    def lower(
        ctx: LoweringContext,
        x: TensorValue,
        dim: int | Sequence[int] | None = None,
        keepdim: bool = False,
        *,
        dtype: torch.dtype | None = None,
    ) -> TensorValue:
        dims = _dims(x, dim)
        out = _sum_dtype(x, dtype)
        buf = _simple(ctx, x, dims, reduction_type, out, compute_dtype(out))
        return keep_dims(buf, x.get_size(), dims, keepdim)

    return lower


def _mean(
    ctx: LoweringContext,
    x: TensorValue,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> TensorValue:
    """sum in float32 (for bf16 too), divided, then cast, as eager's CPU mean."""
    out = dtype or x.dtype
    if not is_float(out):
        raise TypeError(f"mean: expected a floating point input or dtype, got {out}")
    dims, acc = _dims(x, dim), compute_dtype(out)
    total = _simple(ctx, x, dims, "sum", acc, acc)
    n = count(x.get_size(), dims)
    mean = map_reduced(total, out, lambda ops, v: ops.truediv(v, to_loader(n, acc)(ops, [])))
    return keep_dims(mean, x.get_size(), dims, keepdim)


# -- max, min, argmax, any, all ------------------------------------------------------


def _extreme(reduction_type: str) -> Callable[..., TensorValue]:
    """amax / amin (dim=[] reduces everything), max.default / min.default."""

    def lower(
        ctx: LoweringContext,
        x: TensorValue,
        dim: int | Sequence[int] | None = None,
        keepdim: bool = False,
    ) -> TensorValue:
        dims = _dims(x, dim)
        buf = _simple(ctx, x, dims, reduction_type, x.dtype, compute_dtype(x.dtype))
        return keep_dims(buf, x.get_size(), dims, keepdim)

    return lower


def _arg_extreme(reduction_type: str) -> Callable[..., TensorValue]:
    """argmax / argmin: the first index of the extreme, NaN counting as the
    extreme; dim=None indexes the flattened tensor."""

    def lower(
        ctx: LoweringContext, x: TensorValue, dim: int | None = None, keepdim: bool = False
    ) -> TensorValue:
        dims = _dims(x, dim)
        buf = _simple(ctx, x, dims, reduction_type, torch.int64, compute_dtype(x.dtype))
        return keep_dims(buf, x.get_size(), dims, keepdim)

    return lower


def _extreme_with_index(value_type: str, index_type: str) -> Callable[..., tuple[TensorValue, ...]]:
    """max.dim / min.dim: (values, indices)."""

    def lower(
        ctx: LoweringContext, x: TensorValue, dim: int, keepdim: bool = False
    ) -> tuple[TensorValue, TensorValue]:
        values = _extreme(value_type)(ctx, x, [dim], keepdim)
        indices = _arg_extreme(index_type)(ctx, x, dim, keepdim)
        return values, indices

    return lower


def _any_all(reduction_type: str) -> Callable[..., TensorValue]:
    def lower(
        ctx: LoweringContext,
        x: TensorValue,
        dim: int | Sequence[int] | None = None,
        keepdim: bool = False,
    ) -> TensorValue:
        out = torch.uint8 if x.dtype == torch.uint8 else torch.bool
        if dim is not None and not isinstance(dim, int) and len(dim) == 0:
            return identity(identity(x, torch.bool), out)  # any.dims(x, []) reduces nothing
        dims = _dims(x, dim)
        buf = _simple(ctx, x, dims, reduction_type, out, torch.bool)
        return keep_dims(buf, x.get_size(), dims, keepdim)

    return lower


# -- var, std ----------------------------------------------------------------------------


def welford_moments(
    ctx: LoweringContext, x: TensorValue, dims: list[int], acc: torch.dtype
) -> tuple[ComputedBuffer, ComputedBuffer, sympy.Expr]:
    """(mean, sum of squared deviations, N) over |dims| in |acc|: one Welford
    reduction ([Note: multi-output reductions]) whose two outputs are
    buffers over the kept dims."""
    sizes = x.get_size()
    ranges, reduction_ranges = _split_ranges(sizes, dims)
    inner_fn = _full_index_fn(len(sizes), dims, to_loader(x, acc))
    mean, m2 = ctx.reduce_welford(ranges, reduction_ranges, inner_fn, acc)
    return mean, m2, count(sizes, dims)


def _var_std(take_sqrt: bool, with_mean: bool) -> Callable[..., Any]:
    """var/std(.correction/.dim/.default) and var_mean/std_mean: the sum of
    squared deviations divided by max(N - correction, 0)."""

    def lower(
        ctx: LoweringContext,
        x: TensorValue,
        dim: int | Sequence[int] | bool | None = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: float | None = None,
    ) -> Any:
        if isinstance(dim, bool):  # var.default(self, unbiased)
            dim, unbiased = None, dim
        if correction is None:
            correction = 0 if unbiased is False else 1
        if not is_float(x.dtype):
            raise TypeError(f"var/std: expected a floating point input, got {x.dtype}")
        dims, acc, sizes = _dims(x, dim), compute_dtype(x.dtype), x.get_size()
        mean, m2, n = welford_moments(ctx, x, dims, acc)
        divisor = sympy.Max(n - sympy.sympify(correction), 0)

        def finish(ops: Any, v: Any) -> Any:
            var = ops.truediv(v, to_loader(divisor, acc)(ops, []))
            return ops.sqrt(var) if take_sqrt else var

        result = keep_dims(map_reduced(m2, x.dtype, finish), sizes, dims, keepdim)
        if not with_mean:
            return result
        mean_out = map_reduced(mean, x.dtype, lambda ops, v: v)
        return result, keep_dims(mean_out, sizes, dims, keepdim)

    return lower


# -- softmax, log_softmax, logsumexp ------------------------------------------------------


def _softmax_like(log: bool) -> Callable[..., Pointwise]:
    """Three nodes: the max (realized), the sum of exp(x - max) (realized),
    and the normalised pointwise (unrealized)."""

    def lower(ctx: LoweringContext, x: TensorValue, dim: int, half_to_float: bool) -> Pointwise:
        sizes, ndim = x.get_size(), len(x.get_size())
        dims, acc = _dims(x, dim), compute_dtype(x.dtype)
        out = torch.float32 if half_to_float and acc != x.dtype else x.dtype
        load_x = to_loader(x, acc)
        load_max = broadcast_reduced(_simple(ctx, x, dims, "max", acc, acc), ndim, dims)

        def shifted(ops: Any, full: Sequence[sympy.Expr]) -> Any:
            return ops.sub(load_x(ops, full), load_max(ops, full))

        def exp_shifted(ops: Any, full: Sequence[sympy.Expr]) -> Any:
            return ops.exp(shifted(ops, full))

        total = make_reduction(ctx, sizes, dims, "sum", exp_shifted, acc, acc)
        load_sum = broadcast_reduced(total, ndim, dims)

        def inner_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            if log:
                value = ops.sub(shifted(ops, index), ops.log(load_sum(ops, index)))
            else:
                value = ops.truediv(exp_shifted(ops, index), load_sum(ops, index))
            return value if out == acc else ops.to_dtype(value, out)

        return Pointwise(list(sizes), out, inner_fn)

    return lower


def _logsumexp(
    ctx: LoweringContext, x: TensorValue, dim: Sequence[int], keepdim: bool = False
) -> TensorValue:
    """log(sum(exp(x - m))) + m with m = max, taken as 0 where it is ±inf (eager)."""
    sizes, ndim = x.get_size(), len(x.get_size())
    out = x.dtype if is_float(x.dtype) else torch.get_default_dtype()
    dims, acc = _dims(x, dim), compute_dtype(out)
    peak = _simple(ctx, x, dims, "max", acc, acc)

    def finite_max(ops: Any, m: Any) -> Any:
        return ops.where(ops.isinf(m), ops.constant(0.0, acc), m)

    shift = map_reduced(peak, acc, finite_max)
    load_x, load_shift = to_loader(x, acc), broadcast_reduced(shift, ndim, dims)

    def exp_shifted(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return ops.exp(ops.sub(load_x(ops, full), load_shift(ops, full)))

    total = make_reduction(ctx, sizes, dims, "sum", exp_shifted, acc, acc)
    load_total, load_peak = total.make_loader(), shift.make_loader()

    def inner_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        value = ops.add(ops.log(load_total(ops, index)), load_peak(ops, index))
        return value if out == acc else ops.to_dtype(value, out)

    result = Pointwise(total.get_size(), out, inner_fn)
    return keep_dims(result, sizes, dims, keepdim)


def vector_norm(
    ctx: LoweringContext,
    x: TensorValue,
    ord: float = 2,  # noqa: A002 (aten's argument name)
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> TensorValue:
    out = dtype or x.dtype
    if not is_float(out):
        raise TypeError(f"linalg_vector_norm: expected a floating point input, got {out}")
    dims, acc, sizes = _dims(x, dim), compute_dtype(out), x.get_size()
    load = to_loader(x, acc)
    p = float(ord)

    def element(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        v = load(ops, full)
        if p == 0:
            return ops.to_dtype(ops.ne(v, ops.constant(0.0, acc)), acc)
        if p == 2:
            return ops.mul(v, v)
        if p == 1 or abs(p) == float("inf"):
            return ops.abs(v)
        return ops.pow(ops.abs(v), ops.constant(p, acc))

    reduction_type = "max" if p == float("inf") else "min" if p == -float("inf") else "sum"
    total = make_reduction(ctx, sizes, dims, reduction_type, element, acc, acc)

    def finish(ops: Any, v: Any) -> Any:
        if p == 2:
            return ops.sqrt(v)
        if p in (0, 1) or abs(p) == float("inf"):
            return v
        return ops.pow(v, ops.constant(1.0 / p, acc))

    return keep_dims(map_reduced(total, out, finish), sizes, dims, keepdim)


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.sum.dim_IntList, aten.sum.default)(_sum_like("sum"))
    registry.register(aten.prod.dim_int, aten.prod.default)(_sum_like("prod"))
    registry.register(aten.mean.dim, aten.mean.default)(_mean)
    registry.register(aten.amax.default, aten.max.default)(_extreme("max"))
    registry.register(aten.amin.default, aten.min.default)(_extreme("min"))
    registry.register(aten.max.dim)(_extreme_with_index("max", "argmax"))
    registry.register(aten.min.dim)(_extreme_with_index("min", "argmin"))
    registry.register(aten.argmax.default)(_arg_extreme("argmax"))
    registry.register(aten.argmin.default)(_arg_extreme("argmin"))
    registry.register(aten.any.default, aten.any.dim, aten.any.dims)(_any_all("any"))
    registry.register(aten.all.default, aten.all.dim, aten.all.dims)(_any_all("all"))
    for overload in ("correction", "dim", "default"):
        registry.register(getattr(aten.var, overload))(_var_std(False, False))
        registry.register(getattr(aten.std, overload))(_var_std(True, False))
    registry.register(aten.var_mean.correction)(_var_std(False, True))
    registry.register(aten.std_mean.correction)(_var_std(True, True))
    registry.register(aten._softmax.default)(_softmax_like(log=False))
    registry.register(aten._log_softmax.default)(_softmax_like(log=True))
    registry.register(aten.logsumexp.default)(_logsumexp)
    registry.register(aten.linalg_vector_norm.default)(vector_norm)
