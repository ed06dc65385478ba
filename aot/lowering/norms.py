"""Normalisation lowerings: native_layer_norm, native_group_norm, batch norm
in inference (_native_batch_norm_legit_no_training, native_batch_norm with
training=False), with batch statistics and no running stats
(_native_batch_norm_legit.no_stats, which instance_norm becomes), and in
training mode with running statistics (_native_batch_norm_legit_functional,
_batch_norm_with_update_functional: what export makes of F.batch_norm with
training=True); and embedding_renorm (F.embedding's max_norm: row norms).

Statistics are one Welford reduction (reductions.welford_moments, [Note:
multi-output reductions] in ir/nodes.py): the mean and the sum of squared
deviations m2 in one pass, accumulated in float32 for bf16/fp16; rstd =
rsqrt(m2 / N + eps). The normalised output is an
unrealized Pointwise ((x - mean) * rstd * weight + bias, computed in float32
and cast back), so it fuses into its readers. The extra outputs (mean, rstd)
have eager's shapes and dtypes; batch norm's dead ones are zero-size. The
functional training ops also return the new running statistics,
(1 - momentum) * running + momentum * batch (the variance unbiased, m2 /
(N - 1)), computed in double like eager's CPU kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import (
    ComputedBuffer,
    ExternKernel,
    GenericView,
    Loader,
    Pointwise,
    Reduction,
    TensorValue,
)
from ..ir.symbols import FloorDiv
from .common import compute_dtype, to_loader
from .context import LoweringContext
from .reductions import broadcast_reduced, keep_dims, map_reduced, vector_norm, welford_moments
from .registry import LoweringRegistry

aten = torch.ops.aten
FullLoader = Callable[[Any, Sequence[sympy.Expr]], Any]


def _param_loader(
    param: TensorValue | None, dtype: torch.dtype, dims: Sequence[int]
) -> Loader | None:
    """A loader over the full input index of a per-feature parameter (weight,
    bias, running stats) whose dims are the input's |dims|."""
    if param is None:
        return None
    inner = to_loader(param, dtype)

    def load(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return inner(ops, [full[d] for d in dims])

    return load


def _normalized(
    x: TensorValue,
    mean: FullLoader,
    rstd: FullLoader,
    weight: FullLoader | None,
    bias: FullLoader | None,
) -> Pointwise:
    """(x - mean) * rstd * weight + bias over x's shape, in x's dtype."""
    acc = compute_dtype(x.dtype)
    load_x, out = to_loader(x, acc), x.dtype

    def inner_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        value = ops.mul(ops.sub(load_x(ops, index), mean(ops, index)), rstd(ops, index))
        if weight is not None:
            value = ops.mul(value, weight(ops, index))
        if bias is not None:
            value = ops.add(value, bias(ops, index))
        return value if out == acc else ops.to_dtype(value, out)

    return Pointwise(x.get_size(), out, inner_fn)


def _rstd(var_sum: TensorValue, n: sympy.Expr, eps: float, acc: torch.dtype) -> Pointwise:
    """rsqrt(var_sum / n + eps), in |acc|."""

    def fn(ops: Any, v: Any) -> Any:
        var = ops.truediv(v, to_loader(n, acc)(ops, []))
        return ops.rsqrt(ops.add(var, ops.constant(float(eps), acc)))

    return map_reduced(var_sum, acc, fn)


def _cast(value: TensorValue, dtype: torch.dtype) -> Pointwise:
    return map_reduced(value, dtype, lambda ops, v: v)


def _empty(dtype: torch.dtype) -> Pointwise:
    """A zero-size value standing for a dead output."""
    return Pointwise([sympy.Integer(0)], dtype, lambda ops, index: ops.constant(0, dtype))


def _layer_norm(
    ctx: LoweringContext,
    x: TensorValue,
    normalized_shape: Sequence[int],
    weight: TensorValue | None,
    bias: TensorValue | None,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """(out, mean, rstd); mean and rstd have size 1 in the normalised dims."""
    sizes, ndim = x.get_size(), len(x.get_size())
    dims = list(range(ndim - len(normalized_shape), ndim))
    acc = compute_dtype(x.dtype)
    mean, m2, n = welford_moments(ctx, x, dims, acc)
    rstd = _rstd(m2, n, eps, acc)
    out = _normalized(
        x,
        broadcast_reduced(mean, ndim, dims),
        broadcast_reduced(rstd, ndim, dims),
        _param_loader(weight, acc, dims),
        _param_loader(bias, acc, dims),
    )
    mean_out = keep_dims(_cast(mean, x.dtype), sizes, dims, True)
    rstd_out = keep_dims(_cast(rstd, x.dtype), sizes, dims, True)
    return out, mean_out, rstd_out


def _batch_norm_inference(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """(x - running_mean) * rsqrt(running_var + eps) * weight + bias, the
    per-channel parameters broadcast along dim 1.

    After a convolution, batch norm is folded into a per-channel scale and
    shift, as eager's CPU kernel computes it (alpha = weight * invstd, beta =
    bias - mean * alpha; out = x * alpha + beta): two [C] buffers computed
    before the convolution, so its fused epilogue ([Note: epilogue fusion])
    does one multiply-add per element. The weights themselves stay as the
    user's checkpoint has them (aotc_model_update_constants keeps working)."""
    acc = compute_dtype(x.dtype)
    stats_dtype = running_mean.dtype
    if _is_convolution_output(ctx, x):
        scale, shift = _folded_terms(ctx, x, weight, bias, running_mean, running_var, eps)
        load_x, out_dtype = to_loader(x, acc), x.dtype

        def apply(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            value = ops.add(ops.mul(load_x(ops, index), scale(ops, index)), shift(ops, index))
            return value if out_dtype == acc else ops.to_dtype(value, out_dtype)

        return Pointwise(x.get_size(), out_dtype, apply), _empty(stats_dtype), _empty(stats_dtype)
    load_var = _param_loader(running_var, acc, [1])
    mean = _param_loader(running_mean, acc, [1])
    assert load_var is not None and mean is not None

    def rstd(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return ops.rsqrt(ops.add(load_var(ops, full), ops.constant(float(eps), acc)))

    out = _normalized(x, mean, rstd, _param_loader(weight, acc, [1]), _param_loader(bias, acc, [1]))
    return out, _empty(stats_dtype), _empty(stats_dtype)


def _is_convolution_output(ctx: LoweringContext, x: TensorValue) -> bool:
    return any(
        isinstance(node, ExternKernel)
        and node.kind == "convolution"
        and any(out is x for out in node.outputs)
        for node in reversed(ctx.nodes)
    )


def _folded_terms(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    eps: float,
) -> tuple[Loader, Loader]:
    """Loaders (over x's index) of batch norm's realized per-channel scale
    weight * rsqrt(var + eps) and shift bias - mean * scale."""
    acc = compute_dtype(x.dtype)
    channels = [x.get_size()[1]]
    var, mean = to_loader(running_var, acc), to_loader(running_mean, acc)
    w = to_loader(weight, acc) if weight is not None else None
    b = to_loader(bias, acc) if bias is not None else None

    def scale_fn(ops: Any, c: Sequence[sympy.Expr]) -> Any:
        value = ops.rsqrt(ops.add(var(ops, c), ops.constant(float(eps), acc)))
        return ops.mul(w(ops, c), value) if w is not None else value

    scale = ctx.realize(Pointwise(channels, acc, scale_fn))
    load_scale = to_loader(scale, acc)

    def shift_fn(ops: Any, c: Sequence[sympy.Expr]) -> Any:
        value = ops.neg(ops.mul(mean(ops, c), load_scale(ops, c)))
        return ops.add(b(ops, c), value) if b is not None else value

    shift = ctx.realize(Pointwise(channels, acc, shift_fn))
    return _param_loader(scale, acc, [1]), _param_loader(shift, acc, [1])


def _batch_moments(
    ctx: LoweringContext, x: TensorValue
) -> tuple[ComputedBuffer, ComputedBuffer, sympy.Expr]:
    """(mean[C], m2[C], N) of x over every dim but 1: one Welford pass."""
    dims = [d for d in range(len(x.get_size())) if d != 1]
    return welford_moments(ctx, x, dims, compute_dtype(x.dtype))


def _batch_norm_batch_stats(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    eps: float,
    moments: tuple[ComputedBuffer, ComputedBuffer, sympy.Expr] | None = None,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """Normalises with the batch's own statistics over every dim but 1:
    (out, save_mean[C], save_invstd[C]), the saved statistics in x's dtype
    as on CPU (torch's decomposition casts them; eager's CPU kernel keeps
    them in the parameters' dtype, the same unless those are mixed)."""
    ndim = len(x.get_size())
    dims = [d for d in range(ndim) if d != 1]
    acc = compute_dtype(x.dtype)
    mean, m2, n = moments or _batch_moments(ctx, x)
    rstd = _rstd(m2, n, eps, acc)
    out = _normalized(
        x,
        broadcast_reduced(mean, ndim, dims),
        broadcast_reduced(rstd, ndim, dims),
        _param_loader(weight, acc, [1]),
        _param_loader(bias, acc, [1]),
    )
    return out, _cast(mean, x.dtype), _cast(rstd, x.dtype)


def _running_update(
    running: TensorValue,
    batch: TensorValue,
    scale: sympy.Expr | float,
    momentum: float,
    dtype: torch.dtype,
) -> Pointwise:
    """momentum * batch * scale + (1 - momentum) * running, in double as
    eager's CPU kernel updates running stats, stored as |dtype|."""
    load_r, load_b = to_loader(running, torch.float64), to_loader(batch, torch.float64)
    load_scale = to_loader(scale, torch.float64)

    def inner(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        new = ops.mul(ops.mul(load_b(ops, index), load_scale(ops, index)), _f64(ops, momentum))
        old = ops.mul(load_r(ops, index), _f64(ops, 1.0 - momentum))
        return ops.to_dtype(ops.add(new, old), dtype)

    return Pointwise(list(running.get_size()), dtype, inner)


def _f64(ops: Any, value: float) -> Any:
    return ops.constant(float(value), torch.float64)


def _batch_norm_functional(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[TensorValue, ...]:
    """_native_batch_norm_legit_functional: (out, save_mean, save_invstd,
    new running_mean, new running_var). Training normalises with the batch
    statistics and moves the running ones towards them by |momentum|, the
    variance unbiased (m2 / (N - 1)); inference uses the running statistics,
    returned unchanged. New running statistics come in the input's compute
    dtype (float32 for bf16; the graph casts them back), as export says."""
    stats_dtype = torch.promote_types(compute_dtype(x.dtype), running_mean.dtype)
    if not training:
        out, _, _ = _batch_norm_inference(ctx, x, weight, bias, running_mean, running_var, eps)
        copies = [
            map_reduced(r, stats_dtype, lambda ops, v: v) for r in (running_mean, running_var)
        ]
        return out, _empty(x.dtype), _empty(x.dtype), *copies
    moments = _batch_moments(ctx, x)
    out, save_mean, save_invstd = _batch_norm_batch_stats(ctx, x, weight, bias, eps, moments)
    mean, m2, n = moments
    new_mean = _running_update(running_mean, mean, sympy.Integer(1), momentum, stats_dtype)
    # Unbiased variance m2 / (N - 1); N == 1 gives eager's 0 / 0.
    unbiased = float("nan") if n == 1 else 1 / (n - 1)
    new_var = _running_update(running_var, m2, unbiased, momentum, stats_dtype)
    return out, save_mean, save_invstd, new_mean, new_var


def _batch_norm_with_update(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    momentum: float,
    eps: float,
) -> tuple[TensorValue, ...]:
    """_batch_norm_with_update_functional: training batch norm as
    _batch_norm_functional, plus an empty uint8 "reserve" (cuDNN's) as the
    fourth output."""
    out, save_mean, save_invstd, new_mean, new_var = _batch_norm_functional(
        ctx, x, weight, bias, running_mean, running_var, True, momentum, eps
    )
    return out, save_mean, save_invstd, _empty(torch.uint8), new_mean, new_var


def _no_training(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    momentum: float,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    return _batch_norm_inference(ctx, x, weight, bias, running_mean, running_var, eps)


def _native_batch_norm(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue | None,
    running_var: TensorValue | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """native_batch_norm / _native_batch_norm_legit: inference, or batch
    statistics when there are no running stats to update."""
    if running_mean is None or running_var is None:
        if not training:
            raise ValueError("batch_norm in inference needs running_mean and running_var")
        return _batch_norm_batch_stats(ctx, x, weight, bias, eps)
    if training:
        raise ValueError(
            "batch_norm in training mode updates its running statistics, which aotc does "
            "not compile: call model.eval() before exporting"
        )
    return _batch_norm_inference(ctx, x, weight, bias, running_mean, running_var, eps)


def _no_stats(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    return _batch_norm_batch_stats(ctx, x, weight, bias, eps)


def _group_norm(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    n: Any,
    c: Any,
    hxw: Any,
    group: int,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """(out, mean[N, G], rstd[N, G]): statistics over each group of C/G
    channels and every spatial position, read through a [N, G, C/G, *spatial]
    view of x."""
    sizes = x.get_size()
    batch, channels, spatial = sizes[0], sizes[1], list(sizes[2:])
    per_group = FloorDiv(channels, sympy.Integer(group))
    grouped_size = [batch, sympy.Integer(group), per_group, *spatial]

    def ungroup(index: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        b, g, k, *rest = index
        return [b, g * per_group + k, *rest]

    grouped = GenericView(x, grouped_size, ungroup)
    dims = list(range(2, len(grouped_size)))
    acc = compute_dtype(x.dtype)
    mean, m2, count = welford_moments(ctx, grouped, dims, acc)
    rstd = _rstd(m2, count, eps, acc)
    load_mean, load_rstd = mean.make_loader(), rstd.make_loader()

    def group_of(full: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        return [full[0], FloorDiv(full[1], per_group)]

    out = _normalized(
        x,
        lambda ops, full: load_mean(ops, group_of(full)),
        lambda ops, full: load_rstd(ops, group_of(full)),
        _param_loader(weight, acc, [1]),
        _param_loader(bias, acc, [1]),
    )
    return out, _cast(mean, x.dtype), _cast(rstd, x.dtype)


def _embedding_renorm(
    ctx: LoweringContext,
    weight: TensorValue,
    indices: TensorValue,
    max_norm: float,
    norm_type: float,
) -> Pointwise:
    """The functional embedding_renorm_ (F.embedding's max_norm): weight with
    every row that |indices| names rescaled by max_norm / (norm + 1e-7) where
    its norm_type-norm exceeds max_norm. Eager's CPU loop does it row by row;
    here the row norms are one reduction, membership in |indices| an "any"
    reduction, and the result a where. Numerics as eager: the norm in the
    weight's dtype (bf16 rounds it), the scale in double rounded to the
    weight's dtype, the product in float32 rounded once."""
    if len(weight.get_size()) != 2:
        raise ValueError(f"embedding_renorm: weight must be 2-d, got {weight.get_size()}")
    rows = weight.get_size()[0]
    member = _referenced_rows(ctx, rows, indices)
    load_norm = to_loader(vector_norm(ctx, weight, norm_type, dim=1), torch.float64)
    load_member = member.make_loader()
    acc, dtype = compute_dtype(weight.dtype), weight.dtype
    load_w = to_loader(weight, acc)

    def inner(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        norm = load_norm(ops, index[:1])
        limit = ops.constant(float(max_norm), torch.float64)
        rescale = ops.logical_and(load_member(ops, index[:1]), ops.gt(norm, limit))
        denominator = ops.add(norm, ops.constant(1e-7, torch.float64))
        # Eager's C++ `row *= scale` rounds the double scale to the row's dtype.
        scale = ops.to_dtype(ops.to_dtype(ops.truediv(limit, denominator), dtype), acc)
        value = load_w(ops, index)
        value = ops.where(rescale, ops.mul(value, scale), value)
        return value if dtype == acc else ops.to_dtype(value, dtype)

    return Pointwise(list(weight.get_size()), dtype, inner)


def _referenced_rows(
    ctx: LoweringContext, rows: sympy.Expr, indices: TensorValue
) -> ComputedBuffer:
    """bool[rows]: whether |indices| names each row (negative indices wrap
    once, as eager's self[i] does; others out of range are errors)."""
    if indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"embedding_renorm: indices must be int32 or int64, got {indices.dtype}")
    ishape = list(indices.get_size())
    load_i = indices.make_loader()

    def hit(ops: Any, index: Sequence[sympy.Expr], rindex: Sequence[sympy.Expr]) -> Any:
        at = load_i(ops, rindex[: len(ishape)])  # (a 0-d index reduces over [1])
        row = ops.indirect_indexing(at, rows, "embedding_renorm: index")
        return ops.eq(ops.index_expr(row, torch.int64), ops.index_expr(index[0], torch.int64))

    return ctx.reduce(
        Reduction(
            [rows],
            torch.bool,
            reduction_ranges=ishape or [sympy.Integer(1)],
            reduction_type="any",
            inner_fn=hit,
            src_dtype=torch.bool,
        )
    )


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.native_layer_norm.default)(_layer_norm)
    registry.register(aten._native_batch_norm_legit_no_training.default)(_no_training)
    registry.register(aten.native_batch_norm.default)(_native_batch_norm)
    registry.register(aten._native_batch_norm_legit.default)(_native_batch_norm)
    registry.register(aten._native_batch_norm_legit.no_stats)(_no_stats)
    registry.register(aten.native_group_norm.default)(_group_norm)
    registry.register(aten._native_batch_norm_legit_functional.default)(_batch_norm_functional)
    registry.register(aten._batch_norm_with_update_functional.default)(_batch_norm_with_update)
    registry.register(aten.embedding_renorm.default)(_embedding_renorm)
