"""Lowerings of torch's fused linear + cross-entropy ops
(torch.ops.torch_nn._linear_cross_entropy_*), which F.linear_cross_entropy
calls when its chunked path applies (reduction mean/sum/none, int64 target,
no label smoothing: the ops refuse label_smoothing > 0 themselves).

[Note: linear cross-entropy] Eager runs a loop over batch chunks; chunking
only bounds its peak memory, so aotc computes the whole batch at once: the
logits x @ W.T (+ bias) as one GEMM in the logits dtype (float32 for
bf16/fp16 inputs, as the op upcasts on CPU), then per row the max, the sum of
exp(logit - max) and the row's loss w[n] * (log(sum) - (logit[t[n]] - max)),
where w[n] is 0 for ignored rows and else the class weight (or 1). The
scalar op sums that (divided by the sum of w for "mean": 0/0 gives NaN, as
eager) and rounds once to the output dtype. The scalar op also returns the
gradients it precomputes for its autograd; an exported (inference) graph
never reads them, so they are left out (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Pointwise, TensorValue
from . import views
from .common import identity, to_loader
from .context import LoweringContext
from .extern import lower_mm
from .reductions import broadcast_reduced, make_reduction
from .registry import LoweringRegistry

_OPS = "torch_nn"


def _row_losses(
    ctx: LoweringContext,
    x: TensorValue,
    linear_weight: TensorValue,
    target: TensorValue,
    linear_bias: TensorValue | None,
    weight: TensorValue | None,
    ignore_index: int,
    acc: torch.dtype,
) -> tuple[Pointwise, Pointwise]:
    """(w[n] * -log_softmax(logits)[n, t[n]], w[n]), both (N,) in |acc|."""
    n, c = x.get_size()[0], linear_weight.get_size()[0]
    # The op casts input and weight to the logits dtype before its mm on CPU.
    xa = x if x.dtype == acc else identity(x, acc)
    wa = linear_weight if linear_weight.dtype == acc else identity(linear_weight, acc)
    logits: TensorValue = lower_mm(ctx, xa, views.transpose(ctx.realize(wa), 0, 1))
    if linear_bias is not None:
        load_mm, load_b = logits.make_loader(), to_loader(linear_bias, acc)

        def add_bias(ops: Any, idx: Sequence[sympy.Expr]) -> Any:
            return ops.add(load_mm(ops, idx), load_b(ops, [idx[1]]))

        logits = ctx.realize(Pointwise([n, c], acc, add_bias))
    load_l = logits.make_loader()
    peak = make_reduction(ctx, [n, c], [1], "max", load_l, acc, acc)
    load_peak = broadcast_reduced(peak, 2, [1])

    def exp_shifted(ops: Any, full: Sequence[sympy.Expr]) -> Any:
        return ops.exp(ops.sub(load_l(ops, full), load_peak(ops, full)))

    total = make_reduction(ctx, [n, c], [1], "sum", exp_shifted, acc, acc)
    load_t, load_total, load_max = target.make_loader(), total.make_loader(), peak.make_loader()
    load_w = None if weight is None else to_loader(weight, acc)
    # An ignore_index outside [0, C) is replaced by class 0 so the read stays in range.
    in_range = 0 <= ignore_index < int(c) if c.is_number else False

    def target_index(ops: Any, i: Sequence[sympy.Expr]) -> tuple[Any, sympy.Expr]:
        t = load_t(ops, i)
        ignored = ops.eq(t, ops.constant(ignore_index, torch.int64))
        safe = t if in_range else ops.where(ignored, ops.constant(0, torch.int64), t)
        return ignored, ops.indirect_indexing(safe, c, "linear_cross_entropy: target", wrap=False)

    def row_weight(ops: Any, i: Sequence[sympy.Expr]) -> Any:
        ignored, at = target_index(ops, i)
        one = ops.constant(1.0, acc) if load_w is None else load_w(ops, [at])
        return ops.where(ignored, ops.constant(0.0, acc), one)

    def row_loss(ops: Any, i: Sequence[sympy.Expr]) -> Any:
        _, at = target_index(ops, i)
        shifted = ops.sub(load_l(ops, [i[0], at]), load_max(ops, i))
        return ops.mul(ops.sub(ops.log(load_total(ops, i)), shifted), row_weight(ops, i))

    return Pointwise([n], acc, row_loss), Pointwise([n], acc, row_weight)


def _acc_dtype(x: TensorValue, acc_dtype: torch.dtype | None) -> torch.dtype:
    """The logits dtype: acc_dtype (float32 for bf16/fp16 inputs), else the input's."""
    return acc_dtype if acc_dtype is not None else x.dtype


def _finish(value: TensorValue, dtype: torch.dtype) -> TensorValue:
    return value if value.dtype == dtype else identity(value, dtype)


def lower_batch_chunked(
    ctx: LoweringContext,
    x: TensorValue,
    linear_weight: TensorValue,
    target: TensorValue,
    linear_bias: TensorValue | None,
    weight: TensorValue | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    batch_chunk_size: int,
    acc_policy: str,
    acc_dtype: torch.dtype | None,
    *_flags: bool,
) -> tuple[TensorValue, None, None, None]:
    """The scalar (mean/sum) op: (loss, grads left out); see [Note: linear cross-entropy]."""
    if reduction not in ("mean", "sum") or label_smoothing > 0.0:
        raise NotImplementedError(
            f"linear_cross_entropy: reduction={reduction!r}, label_smoothing={label_smoothing}"
        )
    acc = _acc_dtype(x, acc_dtype)
    losses, weights = _row_losses(
        ctx, x, linear_weight, target, linear_bias, weight, ignore_index, acc
    )
    total = make_reduction(ctx, losses.get_size(), [0], "sum", losses.make_loader(), acc, acc)
    if reduction == "mean":
        d = make_reduction(ctx, weights.get_size(), [0], "sum", weights.make_loader(), acc, acc)
        load_total, load_d = total.make_loader(), d.make_loader()

        def mean(ops: Any, i: Sequence[sympy.Expr]) -> Any:
            den = load_d(ops, i)
            zero = ops.eq(den, ops.constant(0.0, acc))
            return ops.truediv(
                load_total(ops, i), ops.where(zero, ops.constant(float("nan"), acc), den)
            )

        result: TensorValue = Pointwise([], acc, mean)
    else:
        result = total
    # fp16 keeps its loss in the acc dtype (eager's output_dtype); bf16 and float32 do not.
    out = acc if x.dtype == torch.float16 else x.dtype
    return _finish(result, out), None, None, None


def lower_batch_chunked_no_reduction(
    ctx: LoweringContext,
    x: TensorValue,
    linear_weight: TensorValue,
    target: TensorValue,
    linear_bias: TensorValue | None,
    weight: TensorValue | None,
    ignore_index: int,
    batch_chunk_size: int,
    acc_policy: str,
    acc_dtype: torch.dtype | None,
) -> TensorValue:
    """The reduction='none' op: the (N,) per-row losses in the input dtype."""
    acc = _acc_dtype(x, acc_dtype)
    losses, _ = _row_losses(ctx, x, linear_weight, target, linear_bias, weight, ignore_index, acc)
    return _finish(losses, x.dtype)


def register(registry: LoweringRegistry) -> None:
    # The ops exist once torch.nn.modules.linear_cross_entropy is imported
    # (torch >= 2.13); older releases have neither the module nor the ops.
    try:
        import torch.nn.modules.linear_cross_entropy  # noqa: F401
    except ImportError:
        return
    ops = getattr(torch.ops, _OPS)
    registry.register(ops._linear_cross_entropy_batch_chunked.default)(lower_batch_chunked)
    registry.register(ops._linear_cross_entropy_batch_chunked_no_reduction.default)(
        lower_batch_chunked_no_reduction
    )
