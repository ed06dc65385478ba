"""Lowerings of binary-search ops: searchsorted (Tensor and Scalar values)
and bucketize.

[Note: binary search bodies] Each output element is a Pointwise whose body
runs eager's binary search over its row of the sorted sequence (the
innermost dim; one row for a 1-d sequence, else the row with the value's
leading indices), unrolled: a row of L elements takes at most
bit_length(L) halvings, so the body is that many steps, each a no-op once
the interval is empty. A step is eager's, so results agree even where the
predicate is not monotone (NaNs in the sequence):

    mid = start + (end - start) // 2
    go right when !(seq[mid] >= value)   (right=False: lower bound)
               or !(seq[mid] > value)    (right=True: upper bound)

The probe is an indirect load under ops.masked (only while start < end), so
no new op is needed; with a sorter, seq[mid] is seq[sorter[mid]]. Sequence
and value compare in their promoted dtype, as eager converts both to it. The
sequence and the sorter are realized: every output element reads them at
data-dependent positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Pointwise, TensorValue
from .common import ValueOrScalar, compute_dtype, is_tensor, promote_types, to_loader
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten

# Steps for a row whose length is only known at run time: enough for any int64 length.
_DYNAMIC_STEPS = 63


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.searchsorted.Tensor, aten.searchsorted.Scalar)(lower_searchsorted)
    registry.register(aten.bucketize.Tensor, aten.bucketize.Scalar)(lower_bucketize)


def lower_searchsorted(
    ctx: LoweringContext,
    sorted_sequence: TensorValue,
    values: ValueOrScalar,
    *,
    out_int32: bool = False,
    right: bool = False,
    side: str | None = None,
    sorter: TensorValue | None = None,
) -> Pointwise:
    if side is not None:
        if side not in ("left", "right"):
            raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        if right and side == "left":
            raise ValueError("searchsorted: side='left' contradicts right=True")
        right = side == "right"
    _check_shapes(sorted_sequence, values, sorter)
    return _binary_search(ctx, sorted_sequence, values, sorter, right, out_int32)


def lower_bucketize(
    ctx: LoweringContext,
    values: ValueOrScalar,
    boundaries: TensorValue,
    *,
    out_int32: bool = False,
    right: bool = False,
) -> Pointwise:
    """searchsorted over 1-d boundaries (the same search, arguments swapped)."""
    if len(boundaries.get_size()) != 1:
        raise ValueError(f"bucketize: boundaries must be 1-d, got {len(boundaries.get_size())}-d")
    return _binary_search(ctx, boundaries, values, None, right, out_int32)


def _check_shapes(seq: TensorValue, values: ValueOrScalar, sorter: TensorValue | None) -> None:
    """eager's rules: a 1-d sequence serves every value; an N-d one needs
    the values' leading dims (no broadcasting); a sorter matches the sequence."""
    seq_size = list(seq.get_size())
    if not seq_size:
        raise ValueError("searchsorted: the sorted sequence must have at least one dim")
    if sorter is not None:
        if list(sorter.get_size()) != seq_size:
            raise ValueError("searchsorted: sorter must have the sorted sequence's sizes")
        if sorter.dtype != torch.int64:
            raise TypeError(f"searchsorted: sorter must be int64, got {sorter.dtype}")
    if len(seq_size) == 1:
        return
    value_size = list(values.get_size()) if is_tensor(values) else []  # type: ignore[union-attr]
    if len(value_size) != len(seq_size) or value_size[:-1] != seq_size[:-1]:
        raise ValueError(
            f"searchsorted: an N-d sorted sequence of sizes {seq_size} needs values with the "
            f"same leading sizes, got {value_size}"
        )


def _binary_search(
    ctx: LoweringContext,
    seq: TensorValue,
    values: ValueOrScalar,
    sorter: TensorValue | None,
    right: bool,
    out_int32: bool,
) -> Pointwise:
    """The Pointwise of [Note: binary search bodies]."""
    dtype = compute_dtype(promote_types(seq, values))
    out = torch.int32 if out_int32 else torch.int64
    size = list(values.get_size()) if is_tensor(values) else []  # type: ignore[union-attr]
    length = sympy.sympify(seq.get_size()[-1])
    steps = int(length).bit_length() if length.is_number else _DYNAMIC_STEPS
    batched = len(seq.get_size()) > 1
    load_seq = to_loader(ctx.realize(seq), dtype)
    load_sorter = to_loader(ctx.realize(sorter), torch.int64) if sorter is not None else None
    load_value = to_loader(values, dtype)

    def probe(ops: Any, row: Sequence[sympy.Expr], mid: Any) -> Any:
        pos: sympy.Expr = ops.indirect_indexing(mid, length, "searchsorted: position", wrap=False)
        if load_sorter is not None:
            order = load_sorter(ops, [*row, pos])
            pos = ops.indirect_indexing(order, length, "searchsorted: sorter", wrap=False)
        return load_seq(ops, [*row, pos])

    def inner(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        value = load_value(ops, index)
        row = list(index[:-1]) if batched else []
        one, two = ops.constant(1, torch.int64), ops.constant(2, torch.int64)
        start, end = ops.constant(0, torch.int64), ops.index_expr(length, torch.int64)
        for _ in range(steps):
            active = ops.lt(start, end)
            mid = ops.add(start, ops.floordiv(ops.sub(end, start), two))
            found = ops.masked(active, lambda mid=mid: probe(ops, row, mid), _zero(dtype))
            stop = ops.gt(found, value) if right else ops.ge(found, value)
            go_right = ops.logical_and(active, ops.logical_not(stop))
            start = ops.where(go_right, ops.add(mid, one), start)
            end = ops.where(ops.logical_and(active, stop), mid, end)
        return start if out == torch.int64 else ops.to_dtype(start, out)

    return Pointwise(size, out, inner)


def _zero(dtype: torch.dtype) -> float | int | bool:
    """A masked probe's value where it does not load (never compared)."""
    if dtype == torch.bool:
        return False
    return 0.0 if dtype.is_floating_point else 0
