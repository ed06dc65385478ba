"""Indexing lowerings: gathers through index tensors (embedding, index,
index_select, gather, take), small scatters (index_put, slice_scatter,
select_scatter) and the copies that need masked loads (cat, constant_pad_nd).
Index tensors may be int32 or int64 (indirect_indexing widens them).

[Note: indirect indexing] An index read from a tensor becomes a load index
through ops.indirect_indexing(value, size, name, wrap): negative values wrap
once as in torch's advanced indexing (aten.index), but not for embedding,
gather and index_select (wrap=False: eager refuses negatives there), and
a value outside [0, size) is a run-time error whose message includes |name|
(e.g. "embedding: index"), never an out-of-bounds read.

index_put is a scatter. Small ones are lowered as gathers, which fuse:
with at most MAX_UNROLLED_INDICES index positions (a KV-cache update in
decode) each output element compares itself with every position, unrolled in
one Pointwise. Up to MAX_REDUCTION_INDICES positions, a max reduction over the
positions finds, per indexed coordinate, the last position that writes it
(last write wins, as eager on CPU), and a Pointwise gathers from |values|;
accumulate sums the hits per element in a reduction (in order:
deterministic). Bodies of bf16/fp16 tensors run in float32 (ops.py) and round
once at the end. Both forms cost (output elements) x (positions), so more
positions, or a dynamic count, go to the "index_put" extern kernel of the
scatter family (scatter.index_put_kernel, [Note: scatter kernels]): a copy
plus one pass over the positions, deterministic, bf16 accumulation rounded
per step as eager does. Dtypes that kernel lacks (bool...) keep the gather
forms.

index_put with a boolean mask (x[mask] = v) keeps x's static shape: it is
a where over x, not data-dependent indexing (_index_put_masked). Reading
x[mask] has a data-dependent shape, which the frontend refuses.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import GenericView, Pointwise, Reduction, TensorValue
from ..ir.symbols import FloorDiv, ModularIndexing, contiguous_strides, product
from . import scan, scatter
from .common import broadcast_shapes, compute_dtype, identity, to_loader
from .context import LoweringContext
from .registry import LoweringRegistry
from .views import (
    Expr,
    Index,
    cast_scalar,
    index_value,
    known_eq,
    normalize_dim,
    reshape,
    slice_bound,
    sym,
    zero_of,
)

aten = torch.ops.aten

# index_put unrolls one comparison per index position up to this many.
MAX_UNROLLED_INDICES = 8
# ...and reduces over the positions up to this many; beyond, the scatter kernel.
MAX_REDUCTION_INDICES = 16


def broadcast_index(index: Index, shape: Sequence[Expr]) -> list[Expr]:
    """The index into |shape| of element |index| of a broadcast result."""
    lead = len(index) - len(shape)
    return [sympy.Integer(0) if size == 1 else index[lead + k] for k, size in enumerate(shape)]


def is_mask(value: TensorValue | None) -> bool:
    """A bool/uint8 index of advanced indexing: a mask, not positions."""
    return value is not None and value.dtype in (torch.bool, torch.uint8)


def _int_dtype(value: TensorValue, what: str) -> None:
    """Advanced-indexing positions: any integer dtype (masks are refused by
    the caller or lowered as masks)."""
    if is_mask(value):
        raise ValueError(
            f"{what}: a boolean mask index selects a data-dependent number of elements"
        )
    if value.dtype.is_floating_point or value.dtype.is_complex:
        raise ValueError(f"{what}: indices must be integers, got {value.dtype}")


def _position_dtype(value: TensorValue, what: str) -> None:
    """The index of gather, index_select, embedding and take: int32 or int64
    as eager requires, except that an empty index may have any dtype (eager
    checks none: there is nothing to read)."""
    if product(value.get_size()) == 0:
        return
    if value.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{what}: index must be int32 or int64, got {value.dtype}")


def embedding(weight: TensorValue, indices: TensorValue) -> Pointwise:
    _position_dtype(indices, "embedding")
    rows, width = weight.get_size()
    load_w, load_i = weight.make_loader(), indices.make_loader()

    def inner(ops: Any, index: Index) -> Any:
        # No negative wrap: eager's embedding refuses negative ids.
        row = ops.indirect_indexing(load_i(ops, index[:-1]), rows, "embedding: index", wrap=False)
        return load_w(ops, [row, index[-1]])

    return Pointwise(list(indices.get_size()) + [width], weight.dtype, inner)


def index_select(value: TensorValue, dim: int, index: TensorValue) -> Pointwise:
    _position_dtype(index, "index_select")
    shape = value.get_size()
    dim = normalize_dim(dim, len(shape))
    irank = len(index.get_size())
    if irank > 1:
        raise ValueError("index_select: index must be 0-d or 1-d")
    count = index.get_size()[0] if irank else sympy.Integer(1)
    load_x, load_i = value.make_loader(), index.make_loader()
    limit = shape[dim] if shape else sympy.Integer(1)

    def inner(ops: Any, idx: Index) -> Any:
        # (a 0-d input gives a 0-d result: its one-element index is read at 0)
        at = ([idx[dim]] if shape else [sympy.Integer(0)]) if irank else []
        pos = ops.indirect_indexing(load_i(ops, at), limit, "index_select: index", wrap=False)
        src = list(idx)
        if shape:
            src[dim] = pos
        return load_x(ops, src)

    size = list(shape)
    if size:
        size[dim] = count
    return Pointwise(size, value.dtype, inner)


def gather(value: TensorValue, dim: int, index: TensorValue) -> Pointwise:
    _position_dtype(index, "gather")
    shape = value.get_size()
    dim = normalize_dim(dim, len(shape))
    if product(index.get_size()) == 0:  # eager checks no ranks then: nothing to read
        return Pointwise(list(index.get_size()), value.dtype, _zero(value.dtype))
    load_x, load_i = value.make_loader(), index.make_loader()
    limit = shape[dim] if shape else sympy.Integer(1)

    def inner(ops: Any, idx: Index) -> Any:
        pos = ops.indirect_indexing(load_i(ops, idx), limit, "gather: index", wrap=False)
        if not shape:  # a 0-d input reads as 1-d (eager); its one element
            return load_x(ops, [])
        src = list(idx)
        src[dim] = pos
        return load_x(ops, src)

    return Pointwise(list(index.get_size()), value.dtype, inner)


def _zero(dtype: torch.dtype) -> Any:
    def load(ops: Any, index: Index) -> Any:
        return ops.constant(zero_of(dtype), dtype)

    return load


def take(value: TensorValue, index: TensorValue) -> Pointwise:
    """value.flatten()[index]: index's shape, negative positions wrapping once
    (eager's take). (torch's decomposition of take indexes with a 0-d
    tensor, which export cannot trace: aten.take must reach lowering.)"""
    _position_dtype(index, "take")
    numel = product(value.get_size())
    load_x = reshape(value, [numel]).make_loader()
    load_i = index.make_loader()

    def inner(ops: Any, idx: Index) -> Any:
        pos = ops.indirect_indexing(load_i(ops, idx), numel, "take: index")
        return load_x(ops, [pos])

    return Pointwise(list(index.get_size()), value.dtype, inner)


class _Advanced:
    """The shape bookkeeping of x[indices] with None (full slice) entries."""

    def __init__(self, shape: Sequence[Expr], indices: Sequence[TensorValue | None]) -> None:
        if len(indices) > len(shape):
            raise ValueError(f"too many indices ({len(indices)}) for a {len(shape)}-d tensor")
        self.shape = list(shape)
        self.dims = [d for d, t in enumerate(indices) if t is not None]
        self.tensors = [t for t in indices if t is not None]
        for t in self.tensors:
            _int_dtype(t, "index")
        self.batch = broadcast_shapes(*[t.get_size() for t in self.tensors])
        self.rest = [d for d in range(len(shape)) if d not in self.dims]
        self.adjacent = self.dims == list(range(self.dims[0], self.dims[-1] + 1))
        lead = self.dims[0] if self.adjacent else 0
        self.lead = lead  # where the batch dims start in the result
        rest_sizes = [self.shape[d] for d in self.rest]
        self.result = rest_sizes[:lead] + self.batch + rest_sizes[lead:]

    def split(self, index: Index) -> tuple[list[Expr], list[Expr]]:
        """A result index as (batch index, index of the non-indexed dims)."""
        nb = len(self.batch)
        batch = list(index[self.lead : self.lead + nb])
        return batch, list(index[: self.lead]) + list(index[self.lead + nb :])

    def join(self, batch: Sequence[Expr], rest: Sequence[Expr]) -> list[Expr]:
        return list(rest[: self.lead]) + list(batch) + list(rest[self.lead :])

    def source(self, positions: Sequence[Expr], rest: Sequence[Expr]) -> list[Expr]:
        out: list[Expr] = [sympy.Integer(0)] * len(self.shape)
        for d, pos in zip(self.dims, positions, strict=True):
            out[d] = pos
        for d, at in zip(self.rest, rest, strict=True):
            out[d] = at
        return out

    def positions(self, ops: Any, batch: Index, what: str) -> list[Expr]:
        out = []
        for k, (d, t) in enumerate(zip(self.dims, self.tensors, strict=True)):
            value = t.make_loader()(ops, broadcast_index(batch, t.get_size()))
            name = f"{what}: indices[{k}]" if len(self.tensors) > 1 else f"{what}: index"
            out.append(ops.indirect_indexing(value, self.shape[d], name))
        return out


def index(value: TensorValue, indices: Sequence[TensorValue | None]) -> TensorValue:
    if all(t is None for t in indices):
        return value
    adv = _Advanced(value.get_size(), indices)
    load_x = value.make_loader()

    def inner(ops: Any, idx: Index) -> Any:
        batch, rest = adv.split(idx)
        return load_x(ops, adv.source(adv.positions(ops, batch, "index"), rest))

    return Pointwise(adv.result, value.dtype, inner)


def _finish(ops: Any, value: Any, cdt: torch.dtype, dtype: torch.dtype) -> Any:
    """A body's result, computed in |cdt|, stored as |dtype|."""
    return value if cdt == dtype else ops.to_dtype(value, dtype)


def index_put(
    ctx: LoweringContext,
    value: TensorValue,
    indices: Sequence[TensorValue | None],
    values: TensorValue,
    accumulate: bool = False,
) -> TensorValue:
    """value with value[indices] = values (or += with |accumulate|). See
    [Note: indirect indexing] for the two strategies."""
    if all(t is None for t in indices):
        raise ValueError("index_put without index tensors")
    if any(is_mask(t) for t in indices):
        return _index_put_masked(ctx, value, indices, values, accumulate)
    adv = _Advanced(value.get_size(), indices)
    broadcast_shapes(adv.result, values.get_size())  # values must fit value[indices]
    count = product(adv.batch)
    if count.is_Integer and int(count) <= MAX_UNROLLED_INDICES:
        return _index_put_unrolled(adv, value, values, accumulate)
    small = count.is_Integer and int(count) <= MAX_REDUCTION_INDICES
    if not small and scatter.index_put_supported(value.dtype):
        return scatter.index_put_kernel(ctx, adv, value, values, accumulate)
    if accumulate:
        return _index_put_sum(ctx, adv, value, values)
    return _index_put_last(ctx, adv, value, values)


def _index_put_masked(
    ctx: LoweringContext,
    value: TensorValue,
    indices: Sequence[TensorValue | None],
    values: TensorValue,
    accumulate: bool,
) -> Pointwise:
    """value[mask] = values (or +=) with one boolean mask covering dims p ..
    p + mask.ndim - 1: the result has value's static shape, so it is a where
    over value, not data-dependent indexing. value[mask] has shape
    shape[:p] + [count] + shape[p + k:]; when |values| broadcasts over count
    every selected element takes the same values, else the n-th selected
    element (row-major over the mask) takes values[.., n, ..], n from a
    cumsum of the mask (a count that exceeds values' is a run-time error)."""
    p, mask = _single_mask(indices)
    shape, mshape = value.get_size(), mask.get_size()
    k = len(mshape)
    if p + k > len(shape) or not all(
        known_eq(m, s) for m, s in zip(mshape, shape[p : p + k], strict=False)
    ):
        raise ValueError(f"index_put: mask of shape {mshape} does not match {shape} at dim {p}")
    vshape = values.get_size()
    rank = len(shape) - k + 1  # of value[mask]
    if len(vshape) > rank:
        raise ValueError(f"index_put: values of shape {vshape} do not fit value[mask]")
    count_dim = p - (rank - len(vshape))  # values' dim along count, if any
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    load_x, load_v = to_loader(value, cdt), _values_loader(values, dtype, cdt)
    load_m = mask.make_loader()
    rank_of = _mask_ranks(ctx, mask) if count_dim >= 0 and vshape[count_dim] != 1 else None

    def selected(ops: Any, idx: Index) -> Any:
        at = load_m(ops, idx[p : p + k])
        return at if mask.dtype == torch.bool else ops.ne(at, ops.constant(0, mask.dtype))

    def new_value(ops: Any, idx: Index) -> Any:
        row = [*idx[:p], sympy.Integer(0), *idx[p + k :]]
        if rank_of is not None:
            n = rank_of(ops, idx[p : p + k])
            row[p] = ops.indirect_indexing(n, vshape[count_dim], "index_put: values", wrap=False)
        return load_v(ops, broadcast_index(row, vshape))

    def inner(ops: Any, idx: Index) -> Any:
        hit = selected(ops, idx)
        new = ops.masked(hit, lambda: new_value(ops, idx), zero_of(cdt))
        old = load_x(ops, idx)
        if not accumulate:
            return _finish(ops, ops.where(hit, new, old), cdt, dtype)
        new = ops.where(hit, new, ops.constant(zero_of(cdt), cdt))
        total = ops.logical_or(old, new) if cdt == torch.bool else ops.add(old, new)
        return _finish(ops, total, cdt, dtype)

    return Pointwise(list(shape), dtype, inner)


def _mask_ranks(ctx: LoweringContext, mask: TensorValue) -> Callable[[Any, Index], Any]:
    """rank(ops, at): how many set elements of |mask| come before |at|
    (row-major), from one cumsum of the flattened mask."""
    mshape = list(mask.get_size())
    counts = scan.lower_cumsum(ctx, reshape(mask, [product(mshape)]), 0)
    load, strides = counts.make_loader(), contiguous_strides(mshape)

    def rank(ops: Any, at: Index) -> Any:
        flat = sympy.Add(*[i * st for i, st in zip(at, strides, strict=True)])
        return ops.sub(load(ops, [flat]), ops.constant(1, torch.int64))

    return rank


def _single_mask(indices: Sequence[TensorValue | None]) -> tuple[int, TensorValue]:
    """(position, mask) of index_put's one mask index, the others None."""
    tensors = [(k, t) for k, t in enumerate(indices) if t is not None]
    if len(tensors) != 1:
        raise ValueError(
            "index_put: a boolean mask together with other index tensors selects a "
            "data-dependent set of positions"
        )
    return tensors[0]


def _match(ops: Any, adv: _Advanced, batch: Index, at: Sequence[Expr]) -> Any:
    """True where index position |batch| points at indexed coordinates |at|."""
    cond = None
    for pos, where in zip(adv.positions(ops, batch, "index_put"), at, strict=True):
        eq = ops.eq(ops.index_expr(pos, torch.int64), index_value(ops, where))
        cond = eq if cond is None else ops.logical_and(cond, eq)
    return cond


def _index_put_unrolled(
    adv: _Advanced, value: TensorValue, values: TensorValue, accumulate: bool
) -> Pointwise:
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    load_x, load_v = to_loader(value, cdt), _values_loader(values, dtype, cdt)
    vshape = values.get_size()
    combos = [[sympy.Integer(k) for k in p] for p in itertools.product(*map(range, adv.batch))]

    def inner(ops: Any, idx: Index) -> Any:
        acc = load_x(ops, idx)
        rest = [idx[d] for d in adv.rest]
        for batch in combos:
            cond = _match(ops, adv, batch, [idx[d] for d in adv.dims])
            new = load_v(ops, broadcast_index(adv.join(batch, rest), vshape))
            if accumulate:
                new = ops.where(cond, new, ops.constant(zero_of(cdt), cdt))
                acc = ops.logical_or(acc, new) if cdt == torch.bool else ops.add(acc, new)
            else:
                acc = ops.where(cond, new, acc)
        return _finish(ops, acc, cdt, dtype)

    return Pointwise(list(value.get_size()), dtype, inner)


def _values_loader(values: TensorValue, dtype: torch.dtype, cdt: torch.dtype) -> Any:
    """|values| rounded to |dtype| (as the write would) and read in |cdt|."""
    if values.dtype == dtype or compute_dtype(values.dtype) == dtype:
        return to_loader(values, cdt)
    rounded = identity(values, dtype)
    return to_loader(rounded, cdt)


def _index_put_last(
    ctx: LoweringContext, adv: _Advanced, value: TensorValue, values: TensorValue
) -> Pointwise:
    """For each indexed coordinate, the last index position that writes it
    (a max reduction over the positions), then a gather from |values|."""
    nb = len(adv.batch)
    bstrides = contiguous_strides(list(adv.batch))

    def last(ops: Any, at: Index, rindex: Index) -> Any:
        flat = sympy.Add(*[r * s for r, s in zip(rindex, bstrides, strict=True)]) + 1
        hit = _match(ops, adv, rindex, at)
        return ops.where(hit, index_value(ops, flat), ops.constant(0, torch.int64))

    writer = ctx.reduce(
        Reduction(
            [adv.shape[d] for d in adv.dims],
            torch.int64,
            reduction_ranges=list(adv.batch),
            reduction_type="max",
            inner_fn=last,
            src_dtype=torch.int64,
        )
    )
    load_w = writer.make_loader()
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    load_x, load_v = to_loader(value, cdt), _values_loader(values, dtype, cdt)
    vshape, total = values.get_size(), product(adv.batch)

    def inner(ops: Any, idx: Index) -> Any:
        k = load_w(ops, [idx[d] for d in adv.dims])
        hit = ops.gt(k, ops.constant(0, torch.int64))
        flat = ops.indirect_indexing(ops.sub(k, ops.constant(1, torch.int64)), total, "index_put")
        batch = [
            ModularIndexing(flat, bstrides[j], adv.batch[j]) if j else FloorDiv(flat, bstrides[0])
            for j in range(nb)
        ]
        rest = [idx[d] for d in adv.rest]
        new = ops.masked(
            hit, lambda: load_v(ops, broadcast_index(adv.join(batch, rest), vshape)), zero_of(cdt)
        )
        return _finish(ops, ops.where(hit, new, load_x(ops, idx)), cdt, dtype)

    return Pointwise(list(value.get_size()), dtype, inner)


def _index_put_sum(
    ctx: LoweringContext, adv: _Advanced, value: TensorValue, values: TensorValue
) -> Pointwise:
    """value + the sum over index positions that hit each element (in order,
    so deterministic)."""
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    load_x, load_v = to_loader(value, cdt), _values_loader(values, dtype, cdt)
    vshape = values.get_size()
    kind = "any" if cdt == torch.bool else "sum"

    def added(ops: Any, idx: Index, rindex: Index) -> Any:
        hit = _match(ops, adv, rindex, [idx[d] for d in adv.dims])
        rest = [idx[d] for d in adv.rest]
        new = ops.masked(
            hit, lambda: load_v(ops, broadcast_index(adv.join(rindex, rest), vshape)), zero_of(cdt)
        )
        return ops.where(hit, new, ops.constant(zero_of(cdt), cdt))

    sums = ctx.reduce(
        Reduction(
            list(value.get_size()),
            cdt,
            reduction_ranges=list(adv.batch),
            reduction_type=kind,
            inner_fn=added,
            src_dtype=cdt,
        )
    )
    load_s = sums.make_loader()

    def inner(ops: Any, idx: Index) -> Any:
        x, s = load_x(ops, idx), load_s(ops, idx)
        total = ops.logical_or(x, s) if cdt == torch.bool else ops.add(x, s)
        return _finish(ops, total, cdt, dtype)

    return Pointwise(list(value.get_size()), dtype, inner)


def slice_scatter(
    value: TensorValue,
    src: TensorValue,
    dim: int = 0,
    start: Any = None,
    end: Any = None,
    step: int = 1,
) -> TensorValue:
    shape = value.get_size()
    dim = normalize_dim(dim, len(shape))
    lo = slice_bound(start, shape[dim], sympy.Integer(0), is_end=False)
    hi = slice_bound(end, shape[dim], shape[dim], is_end=True)
    step_ = sym(step)
    dtype = value.dtype
    if lo == 0 and known_eq(hi, shape[dim]) and step_ == 1:
        return src if src.dtype == dtype else identity(src, dtype)
    cdt = compute_dtype(dtype)
    load_x, load_s = to_loader(value, cdt), _values_loader(src, dtype, cdt)

    def inner(ops: Any, idx: Index) -> Any:
        at = ops.index_expr(idx[dim], torch.int64)
        mask = ops.logical_and(ops.ge(at, index_value(ops, lo)), ops.lt(at, index_value(ops, hi)))
        if step_ != 1:
            offset = ops.index_expr(idx[dim] - lo, torch.int64)
            phase = ops.mod(offset, ops.constant(int(step_), torch.int64))
            mask = ops.logical_and(mask, ops.eq(phase, ops.constant(0, torch.int64)))
        inside = list(idx)
        inside[dim] = FloorDiv(idx[dim] - lo, step_)
        new = ops.masked(mask, lambda: load_s(ops, inside), zero_of(cdt))
        return _finish(ops, ops.where(mask, new, load_x(ops, idx)), cdt, dtype)

    return Pointwise(list(shape), dtype, inner)


def select_scatter(value: TensorValue, src: TensorValue, dim: int, at: Any) -> TensorValue:
    shape = value.get_size()
    dim = normalize_dim(dim, len(shape))
    where = sym(at)
    if where.is_Integer and int(where) < 0:
        where = where + shape[dim]
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    load_x, load_s = to_loader(value, cdt), _values_loader(src, dtype, cdt)

    def inner(ops: Any, idx: Index) -> Any:
        hit = ops.eq(ops.index_expr(idx[dim], torch.int64), index_value(ops, where))
        new = load_s(ops, list(idx[:dim]) + list(idx[dim + 1 :]))
        return _finish(ops, ops.where(hit, new, load_x(ops, idx)), cdt, dtype)

    return Pointwise(list(shape), dtype, inner)


def cat(values: Sequence[TensorValue], dim: int = 0) -> TensorValue:
    # Legacy rule: 1-d empty tensors are skipped whatever the other ranks.
    pieces = [v for v in values if not (len(v.get_size()) == 1 and v.get_size()[0] == 0)]
    if not pieces:
        return values[0]
    dtype = functools.reduce(torch.promote_types, [v.dtype for v in values])
    shape = pieces[0].get_size()
    dim = normalize_dim(dim, len(shape))
    pieces = [p for p in pieces if p.get_size()[dim] != 0] or pieces[:1]
    if len(pieces) == 1:
        return pieces[0] if pieces[0].dtype == dtype else identity(pieces[0], dtype)
    starts: list[Expr] = [sympy.Integer(0)]
    for p in pieces:
        starts.append(starts[-1] + p.get_size()[dim])
    cdt = compute_dtype(dtype)
    loaders = [_values_loader(p, dtype, cdt) for p in pieces]
    size = list(shape)
    size[dim] = starts[-1]

    def piece(ops: Any, index: Index, k: int, mask: Any) -> Any:
        shifted = list(index)
        shifted[dim] = index[dim] - starts[k]
        return ops.masked(mask, lambda: loaders[k](ops, shifted), zero_of(cdt))

    def inner(ops: Any, index: Index) -> Any:
        at = ops.index_expr(index[dim], torch.int64)
        last = len(pieces) - 1
        acc = piece(ops, index, last, ops.ge(at, index_value(ops, starts[last])))
        for k in reversed(range(last)):
            below = ops.lt(at, index_value(ops, starts[k + 1]))
            mask = (
                below if k == 0 else ops.logical_and(ops.ge(at, index_value(ops, starts[k])), below)
            )
            acc = ops.where(below, piece(ops, index, k, mask), acc)
        return _finish(ops, acc, cdt, dtype)

    return Pointwise(size, dtype, inner)


def constant_pad_nd(value: TensorValue, pad: Sequence[Any], fill: Any = 0) -> TensorValue:
    old = value.get_size()
    ndim = len(old)
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise ValueError(f"pad {list(pad)} does not fit a {ndim}-d tensor")
    lows = [sympy.Integer(0)] * ndim
    highs = [sympy.Integer(0)] * ndim
    for k in range(len(pad) // 2):
        lows[ndim - 1 - k], highs[ndim - 1 - k] = sym(pad[2 * k]), sym(pad[2 * k + 1])
    size = [old[d] + lows[d] + highs[d] for d in range(ndim)]
    dtype = value.dtype
    cdt = compute_dtype(dtype)
    loader = to_loader(value, cdt)
    # The fill is rounded to the tensor's dtype, as eager stores it.
    other = cast_scalar(torch.tensor(fill).to(dtype).item(), cdt)
    checks = [(d, bool(lows[d] > 0), bool(highs[d] > 0)) for d in range(ndim)]
    checks = [c for c in checks if c[1] or c[2]]

    def src(index: Index) -> Index:
        return [index[d] - lows[d] for d in range(ndim)]

    if not checks:  # only negative pads: a crop
        return GenericView(value, size, src)

    def inner(ops: Any, index: Index) -> Any:
        mask = None
        for d, low, high in checks:
            at = ops.index_expr(index[d], torch.int64)
            parts = []
            if low:
                parts.append(ops.ge(at, index_value(ops, lows[d])))
            if high:
                parts.append(ops.lt(at, index_value(ops, lows[d] + old[d])))
            for part in parts:
                mask = part if mask is None else ops.logical_and(mask, part)
        return _finish(ops, ops.masked(mask, lambda: loader(ops, src(index)), other), cdt, dtype)

    return Pointwise(size, dtype, inner)


def register(registry: LoweringRegistry) -> None:
    reg = registry.register
    reg(aten.embedding.default)(lambda ctx, weight, indices, *args: embedding(weight, indices))
    reg(aten.index_select.default)(lambda ctx, x, dim, index: index_select(x, dim, index))
    reg(aten.gather.default)(lambda ctx, x, dim, index, *, sparse_grad=False: gather(x, dim, index))
    reg(aten.index.Tensor)(lambda ctx, x, indices: index(x, indices))
    reg(aten.take.default)(lambda ctx, x, index: take(x, index))
    reg(aten.index_put.default)(index_put)
    reg(aten.slice_scatter.default)(
        lambda ctx, x, src, dim=0, start=None, end=None, step=1: slice_scatter(
            x, src, dim, start, end, step
        )
    )
    reg(aten.select_scatter.default)(lambda ctx, x, src, dim, at: select_scatter(x, src, dim, at))
    reg(aten.cat.default)(lambda ctx, tensors, dim=0: cat(tensors, dim))
    reg(aten.constant_pad_nd.default)(lambda ctx, x, pad, value=0: constant_pad_nd(x, pad, value))
