"""Normalisation lowerings: native_layer_norm, native_group_norm and batch
norm in inference (_native_batch_norm_legit_no_training, native_batch_norm
with training=False) or with batch statistics and no running stats
(_native_batch_norm_legit.no_stats, which instance_norm becomes).

Statistics are one Welford reduction (reductions.welford_moments, [Note:
multi-output reductions] in ir/nodes.py): the mean and the sum of squared
deviations m2 in one pass, accumulated in float32 for bf16/fp16; rstd =
rsqrt(m2 / N + eps). The normalised output is an
unrealized Pointwise ((x - mean) * rstd * weight + bias, computed in float32
and cast back), so it fuses into its readers. The extra outputs (mean, rstd)
have eager's shapes and dtypes; batch norm's dead ones are zero-size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import GenericView, Loader, Pointwise, TensorValue
from ..ir.symbols import FloorDiv
from .common import compute_dtype, to_loader
from .context import LoweringContext
from .reductions import broadcast_reduced, keep_dims, map_reduced, welford_moments
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
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    running_mean: TensorValue,
    running_var: TensorValue,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """(x - running_mean) * rsqrt(running_var + eps) * weight + bias, the
    per-channel parameters broadcast along dim 1."""
    acc = compute_dtype(x.dtype)
    load_var = _param_loader(running_var, acc, [1])
    assert load_var is not None

    def rstd(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return ops.rsqrt(ops.add(load_var(ops, full), ops.constant(float(eps), acc)))

    mean = _param_loader(running_mean, acc, [1])
    assert mean is not None
    out = _normalized(x, mean, rstd, _param_loader(weight, acc, [1]), _param_loader(bias, acc, [1]))
    stats_dtype = running_mean.dtype
    return out, _empty(stats_dtype), _empty(stats_dtype)


def _batch_norm_batch_stats(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue | None,
    bias: TensorValue | None,
    eps: float,
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """Normalises with the batch's own statistics over every dim but 1 (no
    running stats to update): (out, mean[C], invstd[C])."""
    ndim = len(x.get_size())
    dims = [d for d in range(ndim) if d != 1]
    acc = compute_dtype(x.dtype)
    mean, m2, n = welford_moments(ctx, x, dims, acc)
    rstd = _rstd(m2, n, eps, acc)
    out = _normalized(
        x,
        broadcast_reduced(mean, ndim, dims),
        broadcast_reduced(rstd, ndim, dims),
        _param_loader(weight, acc, [1]),
        _param_loader(bias, acc, [1]),
    )
    return out, _cast(mean, acc), _cast(rstd, acc)


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
    return _batch_norm_inference(x, weight, bias, running_mean, running_var, eps)


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
    return _batch_norm_inference(x, weight, bias, running_mean, running_var, eps)


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


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.native_layer_norm.default)(_layer_norm)
    registry.register(aten._native_batch_norm_legit_no_training.default)(_no_training)
    registry.register(aten.native_batch_norm.default)(_native_batch_norm)
    registry.register(aten._native_batch_norm_legit.default)(_native_batch_norm)
    registry.register(aten._native_batch_norm_legit.no_stats)(_no_stats)
    registry.register(aten.native_group_norm.default)(_group_norm)
