"""Composite ops that place values into bins by a run-time index:
segment_reduce, histc/histogram and embedding_bag. Part of composite.py's
family (registered from there), split off for size.

[Note: composite scatters] Each op computes a target row per source element
and uses one "scatter" extern kernel (scatter.py) into a buffer with one
extra "dump" row, later sliced away: elements that land nowhere (outside
the histogram range, after the last segment, padding_idx, beyond
nonzero_static's size) go to the dump row, so every index is in range and
the cost stays linear in the input. Float results accumulate in float32 for
bfloat16 inputs and round once at the end (eager's float32 result, rounded).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, Pointwise, TensorValue
from ..ir.symbols import product
from . import creation, indexing, scan, views
from .common import compute_dtype, identity, make_pointwise, normalize_dim, to_loader
from .composite import I64, Expr, Index, const, count_where, finish, flatten, is_zero, scatter_rows
from .context import LoweringContext
from .reductions import make_reduction
from .registry import LoweringRegistry

aten = torch.ops.aten


def register(registry: LoweringRegistry) -> None:
    reg = registry.register
    reg(aten.segment_reduce.default)(lower_segment_reduce)
    reg(aten.histc.default)(lower_histc)
    reg(aten.histogram.bin_ct)(lower_histogram_bin_ct)
    reg(aten.histogram.bins_tensor)(lower_histogram_bins_tensor)
    reg(aten._embedding_bag_forward_only.default)(lower_embedding_bag)
    reg(aten._embedding_bag.default)(functools.partial(lower_embedding_bag, forward_only=False))


# -- segment_reduce -------------------------------------------------------------------------

# The scatter reduction and the empty-segment value of each segment_reduce kind.
_SEGMENT_KINDS: dict[str, tuple[str, float]] = {
    "sum": ("sum", 0.0),
    "mean": ("sum", 0.0),
    "prod": ("prod", 1.0),
    "max": ("amax", float("-inf")),
    "min": ("amin", float("inf")),
}

SegmentBound = Callable[[Any, Index, Any], Any]


def _segment_bounds(
    ctx: LoweringContext, lengths: TensorValue | None, offsets: TensorValue | None
) -> tuple[SegmentBound, SegmentBound]:
    """(start, end) loaders: (ops, outer index, segment as an index or an
    int64 value) -> int64 position along the axis. Lengths become ends by
    an inclusive cumsum (the scan kernel)."""
    if lengths is not None:
        load_len = to_loader(lengths, I64)
        load_end = scan.lower_cumsum(ctx, lengths, -1).make_loader()

        def end(ops: Any, outer: Index, s: Any) -> Any:
            return load_end(ops, [*outer, s])

        def start(ops: Any, outer: Index, s: Any) -> Any:
            return ops.sub(end(ops, outer, s), load_len(ops, [*outer, s]))

        return start, end
    assert offsets is not None
    load_off = to_loader(offsets, I64)

    def start_off(ops: Any, outer: Index, s: Any) -> Any:
        return load_off(ops, [*outer, s])

    def end_off(ops: Any, outer: Index, s: Any) -> Any:
        return load_off(ops, [*outer, s + 1])

    return start_off, end_off


def lower_segment_reduce(
    ctx: LoweringContext,
    data: TensorValue,
    reduce: str,
    *,
    lengths: TensorValue | None = None,
    indices: TensorValue | None = None,
    offsets: TensorValue | None = None,
    axis: int = 0,
    unsafe: bool = False,
    initial: float | None = None,
) -> TensorValue:
    """Reduces data along |axis| over segments given by lengths or offsets
    (leading dims: data's dims before |axis|). Each element's segment is the
    number of segment ends at or before it; a scatter reduces into the
    segments, starting from |initial| (or the reduction's identity). mean
    divides (initial + sum) by the length; an empty segment gives initial,
    or NaN without one, as eager."""
    if indices is not None:
        raise NotImplementedError("segment_reduce: the indices form is not supported")
    if (lengths is None) == (offsets is None):
        raise ValueError("segment_reduce: give exactly one of lengths and offsets")
    if reduce not in _SEGMENT_KINDS:
        raise ValueError(f"segment_reduce: unknown reduction {reduce!r}")
    shape = list(data.get_size())
    axis = normalize_dim(axis, len(shape))
    if lengths is not None:
        segments = lengths.get_size()[-1]
    else:
        assert offsets is not None
        segments = offsets.get_size()[-1] - 1
    start, end = _segment_bounds(ctx, lengths, offsets)

    def ends_before(ops: Any, idx: Index, s: Expr) -> Any:
        return ops.le(end(ops, idx[:axis], s), ops.index_expr(idx[axis], I64))

    segment = count_where(ctx, shape[: axis + 1], segments, ends_before).make_loader()

    def target(ops: Any, idx: Index) -> Any:
        s = segment(ops, idx[: axis + 1])
        before = ops.lt(ops.index_expr(idx[axis], I64), start(ops, idx[:axis], sympy.Integer(0)))
        dump = ops.index_expr(segments, I64)
        return ops.where(ops.logical_or(before, ops.ge(s, dump)), dump, s)

    kind, empty = _SEGMENT_KINDS[reduce]
    fill = empty if initial is None or reduce == "mean" else float(initial)
    acc = compute_dtype(data.dtype)
    size = list(shape)
    size[axis] = segments + 1
    index = Pointwise(shape, I64, target)
    reduced = scatter_rows(
        ctx, "segment_reduce", size, fill, axis, index, identity(data, acc), kind
    )
    values = views.slice_(reduced, axis, 0, segments)
    if reduce != "mean":
        return identity(values, data.dtype)
    return _segment_mean(values, start, end, axis, initial, data.dtype)


def _segment_mean(
    sums: TensorValue,
    start: SegmentBound,
    end: SegmentBound,
    axis: int,
    initial: float | None,
    dtype: torch.dtype,
) -> Pointwise:
    acc = compute_dtype(dtype)
    load = to_loader(sums, acc)
    base = 0.0 if initial is None else float(initial)
    empty = float("nan") if initial is None else base

    def inner(ops: Any, idx: Index) -> Any:
        outer, s = idx[:axis], idx[axis]
        length = ops.sub(end(ops, outer, s), start(ops, outer, s))
        total = ops.add(const(ops, base, acc), load(ops, idx))
        mean = ops.truediv(total, ops.to_dtype(length, acc))
        value = ops.where(ops.gt(length, const(ops, 0)), mean, const(ops, empty, acc))
        return finish(ops, value, acc, dtype)

    return Pointwise(list(sums.get_size()), dtype, inner)


# -- histograms ------------------------------------------------------------------------------


def _histogram(
    ctx: LoweringContext,
    x: TensorValue,
    bins: int | Expr,
    bin_at: Callable[[Any, Index], Any],
    weight: TensorValue | None,
) -> TensorValue:
    """Counts (or sums |weight|) per bin of x's elements, bin_at(ops, flat
    index) giving each one's bin (|bins| for none): a scatter_add into
    bins + 1 slots, the last one the dump ([Note: composite scatters])."""
    numel = product(x.get_size())
    if is_zero(numel):
        return creation.full([bins], 0, x.dtype)
    index = Pointwise([numel], I64, bin_at)
    src = flatten(weight)[0] if weight is not None else creation.full([numel], 1, x.dtype)
    counts = scatter_rows(ctx, "histogram", [bins + 1], 0, 0, index, src)
    return views.slice_(counts, 0, 0, bins)


Range = Callable[[Any], tuple[Any, Any]]


def _outer_edges(
    ctx: LoweringContext, x: TensorValue, lo: float, hi: float, from_data: bool, widen: float
) -> Range:
    """(ops) -> (leftmost, rightmost) edge values in float32: the data's min
    and max when |from_data|, else lo and hi; equal edges move apart by
    |widen| (histc: 1, histogram: 0.5)."""
    acc = compute_dtype(x.dtype)
    if not from_data:
        if lo == hi:
            lo, hi = lo - widen, hi + widen
        lo, hi = (float(torch.tensor(v, dtype=acc).item()) for v in (lo, hi))
        return lambda ops: (const(ops, lo, acc), const(ops, hi, acc))
    flat, numel = flatten(x)
    load_min, load_max = (
        make_reduction(ctx, [numel], [0], kind, to_loader(flat, acc), acc, acc).make_loader()
        for kind in ("min", "max")
    )

    def edges(ops: Any) -> tuple[Any, Any]:
        low, high = load_min(ops, []), load_max(ops, [])
        same = ops.eq(low, high)
        step = const(ops, widen, acc)
        return ops.where(same, ops.sub(low, step), low), ops.where(same, ops.add(high, step), high)

    return edges


def _linear_bin(ops: Any, elt: Any, lo: Any, hi: Any, bins: int, acc: torch.dtype) -> Any:
    """(inside, bin) as eager's LINEAR_INTERPOLATION: trunc((elt - lo) * bins
    / (hi - lo)) for lo <= elt <= hi (NaN is outside)."""
    inside = ops.logical_and(ops.ge(elt, lo), ops.le(elt, hi))
    scaled = ops.truediv(ops.mul(ops.sub(elt, lo), const(ops, float(bins), acc)), ops.sub(hi, lo))
    return inside, ops.to_dtype(ops.where(inside, scaled, const(ops, 0.0, acc)), I64)


def _close_last_bin(ops: Any, inside: Any, pos: Any, bins: int | Expr) -> Any:
    """The rightmost bin includes its right edge; outside elements go to the dump."""
    last = ops.index_expr(sympy.sympify(bins), I64)
    pos = ops.where(ops.eq(pos, last), ops.sub(last, const(ops, 1)), pos)
    return ops.where(inside, pos, last)


def lower_histc(
    ctx: LoweringContext,
    x: TensorValue,
    bins: int = 100,
    min: float = 0,  # noqa: A002 (aten's argument names)
    max: float = 0,  # noqa: A002
) -> TensorValue:
    """Counts of x's elements in |bins| equal bins over [min, max], or over
    the data's [min, max] when min == max (±1 when those are equal too)."""
    acc = compute_dtype(x.dtype)
    from_data = float(min) == float(max) and not is_zero(product(x.get_size()))
    outer = _outer_edges(ctx, x, float(min), float(max), from_data, 1.0)
    load = to_loader(flatten(x)[0], acc)

    def bin_at(ops: Any, idx: Index) -> Any:
        lo, hi = outer(ops)
        inside, pos = _linear_bin(ops, load(ops, idx), lo, hi, bins, acc)
        return _close_last_bin(ops, inside, pos, bins)

    return _histogram(ctx, x, bins, bin_at, None)


def _linspace_at(ops: Any, k: Any, lo: Any, hi: Any, steps: int, acc: torch.dtype) -> Any:
    """Element k (an int64 value) of torch.linspace(lo, hi, steps): counted
    from the start below the halfway point and from the end above it, as
    eager's CPU kernel."""
    step = ops.truediv(ops.sub(hi, lo), const(ops, float(steps - 1), acc))
    from_start = ops.add(lo, ops.mul(step, ops.to_dtype(k, acc)))
    back = ops.sub(const(ops, steps - 1), k)
    from_end = ops.sub(hi, ops.mul(step, ops.to_dtype(back, acc)))
    return ops.where(ops.lt(k, const(ops, steps // 2)), from_start, from_end)


def _density(
    ctx: LoweringContext, hist: TensorValue, width: Callable[[Any, Index], Any]
) -> Pointwise:
    """hist / sum(hist) / bin width, in that order (eager divides twice)."""
    acc = compute_dtype(hist.dtype)
    size = hist.get_size()
    total = make_reduction(ctx, size, [0], "sum", to_loader(hist, acc), acc, acc).make_loader()
    load = to_loader(hist, acc)

    def inner(ops: Any, idx: Index) -> Any:
        value = ops.truediv(ops.truediv(load(ops, idx), total(ops, [])), width(ops, idx))
        return finish(ops, value, acc, hist.dtype)

    return Pointwise(list(size), hist.dtype, inner)


def lower_histogram_bin_ct(
    ctx: LoweringContext,
    x: TensorValue,
    bins: int = 100,
    *,
    range: Sequence[float] | None = None,  # noqa: A002 (aten's argument name)
    weight: TensorValue | None = None,
    density: bool = False,
) -> tuple[TensorValue, TensorValue]:
    """(hist, bin_edges) with |bins| equal bins over |range| or the data's
    [min, max] (±0.5 when equal; [0, 1] for no data). Bins follow eager's
    linear interpolation with a local search: the interpolated bin is
    corrected against the linspace edges on either side."""
    acc = compute_dtype(x.dtype)
    steps = bins + 1
    lo, hi = (float(v) for v in range) if range is not None else (0.0, 1.0)
    from_data = range is None and not is_zero(product(x.get_size()))
    outer = _outer_edges(ctx, x, lo, hi, from_data, 0.5)
    load = to_loader(flatten(x)[0], acc)

    def edge(ops: Any, k: Any) -> Any:
        low, high = outer(ops)
        return _linspace_at(ops, k, low, high, steps, acc)

    def bin_at(ops: Any, idx: Index) -> Any:
        low, high = outer(ops)
        elt = load(ops, idx)
        inside, pos = _linear_bin(ops, elt, low, high, bins, acc)
        # upper_bound over the edges [pos - 1, pos + 2), clipped to [0, steps)
        first = ops.maximum(ops.sub(pos, const(ops, 1)), const(ops, 0))
        found = ops.sub(first, const(ops, 1))
        for delta in (-1, 0, 1):
            k = ops.add(pos, const(ops, delta))
            valid = ops.logical_and(ops.ge(k, const(ops, 0)), ops.lt(k, const(ops, steps)))
            below = ops.logical_and(valid, ops.le(edge(ops, k), elt))
            found = ops.add(found, ops.to_dtype(below, I64))
        return _close_last_bin(ops, inside, found, bins)

    def edge_at(ops: Any, idx: Index) -> Any:
        return finish(ops, edge(ops, ops.index_expr(idx[0], I64)), acc, x.dtype)

    edges = Pointwise([sympy.Integer(steps)], x.dtype, edge_at)
    hist = _histogram(ctx, x, bins, bin_at, weight)
    if density:

        def width(ops: Any, idx: Index) -> Any:
            k = ops.index_expr(idx[0], I64)
            return ops.sub(edge(ops, ops.add(k, const(ops, 1))), edge(ops, k))

        hist = _density(ctx, hist, width)
    return hist, edges


def lower_histogram_bins_tensor(
    ctx: LoweringContext,
    x: TensorValue,
    bins: TensorValue,
    *,
    weight: TensorValue | None = None,
    density: bool = False,
) -> tuple[TensorValue, TensorValue]:
    """(hist, bins) for explicit, increasing bin edges: an element's bin is
    the number of edges <= it, minus one (eager's binary search), counted
    by a reduction over the edges."""
    acc = compute_dtype(x.dtype)
    edges = bins.get_size()[0]
    count = edges - 1
    load_e = to_loader(bins, acc)
    flat, numel = flatten(x)
    load_x = to_loader(flat, acc)

    def bin_at(ops: Any, idx: Index) -> Any:
        elt = load_x(ops, idx)
        lo, hi = load_e(ops, [sympy.Integer(0)]), load_e(ops, [count])
        inside = ops.logical_and(ops.ge(elt, lo), ops.le(elt, hi))
        pos = ops.sub(below(ops, idx), const(ops, 1))
        return _close_last_bin(ops, inside, pos, count)

    def edge_below(ops: Any, idx: Index, r: Expr) -> Any:
        return ops.le(load_e(ops, [r]), load_x(ops, idx))

    if is_zero(numel):
        hist: TensorValue = creation.full([count], 0, x.dtype)
    else:
        below = count_where(ctx, [numel], edges, edge_below).make_loader()
        hist = _histogram(ctx, x, count, bin_at, weight)
    if density:

        def width(ops: Any, idx: Index) -> Any:
            return ops.sub(load_e(ops, [idx[0] + 1]), load_e(ops, [idx[0]]))

        hist = _density(ctx, hist, width)
    return hist, bins


# -- embedding_bag ------------------------------------------------------------------------------

_BAG_SUM, _BAG_MEAN, _BAG_MAX = 0, 1, 2


def lower_embedding_bag(
    ctx: LoweringContext,
    weight: TensorValue,
    indices: TensorValue,
    offsets: TensorValue,
    scale_grad_by_freq: bool = False,
    mode: int = 0,
    sparse: bool = False,
    per_sample_weights: TensorValue | None = None,
    include_last_offset: bool = False,
    padding_idx: int = -1,
    *,
    forward_only: bool = True,
) -> tuple[TensorValue, TensorValue, TensorValue, TensorValue]:
    """(output, offset2bag, bag_size, max_indices) of embedding_bag with
    1-d indices: bag b holds indices [offsets[b], offsets[b+1]), the last
    one up to the end of indices (up to the last offset with
    include_last_offset; eager's mean still counts the indices past it, for
    offsets that do not end at the number of indices as documented). Each
    index's bag is the number of bag starts at or before it, minus one;
    rows are gathered (embedding) and scattered into their bags by sum or
    amax; mean divides by the count of non-padding indices; empty bags are
    0. The other outputs follow eager's conventions per mode, sized as
    export's meta function sizes them."""
    if len(indices.get_size()) != 1:
        raise NotImplementedError("embedding_bag: indices must be 1-d (export flattens 2-d)")
    if mode not in (_BAG_SUM, _BAG_MEAN, _BAG_MAX):
        raise ValueError(f"embedding_bag: unknown mode {mode}")
    numel = indices.get_size()[0]
    starts = offsets.get_size()[0]
    bags = starts - 1 if include_last_offset else starts
    dim = weight.get_size()[1]
    acc = compute_dtype(weight.dtype)
    target, offset2bag = _bag_targets(ctx, indices, offsets, bags, padding_idx, include_last_offset)
    bag_of = ctx.realize(target)
    rows: TensorValue = identity(indexing.embedding(weight, indices), acc)
    if per_sample_weights is not None:
        scale = views.unsqueeze(per_sample_weights, -1)
        rows = make_pointwise(lambda ops, r, w: ops.mul(r, w), rows, scale, dtype=acc)
    spread = views.expand(views.unsqueeze(bag_of, -1), [numel, dim])
    kind = "amax" if mode == _BAG_MAX else "sum"
    size = [bags + 1, dim]
    best = scatter_rows(ctx, "embedding_bag", size, 0, 0, spread, rows, kind, mode != _BAG_MAX)
    values: TensorValue = views.slice_(best, 0, 0, bags)
    size_len = starts if forward_only else bags
    if mode == _BAG_SUM:
        # eager's fast path (float32, no padding_idx) leaves offset2bag empty;
        # sum mode leaves bag_size and max_indices 0
        fast = weight.dtype in (torch.float32, torch.float16) and padding_idx < 0
        bag_ids: TensorValue = creation.full([0], 0, I64) if fast else offset2bag
        zeros = creation.full([size_len], 0, I64)
        return identity(values, weight.dtype), bag_ids, zeros, views.slice_(zeros, 0, 0, bags)
    ones = creation.full([numel], 1, I64)
    counts = scatter_rows(ctx, "embedding_bag", [bags + 1], 0, 0, bag_of, ones)
    bag_size = _bag_size(counts, size_len, bags)
    if mode == _BAG_MEAN:
        values = _divide_by_count(values, counts)
        max_indices: TensorValue = views.slice_(bag_size, 0, 0, bags)
    else:
        max_indices = _max_indices(ctx, indices, rows, best, spread, bags)
    return identity(values, weight.dtype), offset2bag, bag_size, max_indices


def _bag_targets(
    ctx: LoweringContext,
    indices: TensorValue,
    offsets: TensorValue,
    bags: Expr,
    padding_idx: int,
    include_last_offset: bool,
) -> tuple[Pointwise, Pointwise]:
    """(target, offset2bag): each index's bag, the number of bag starts at
    or before it minus one; the target is the dump bag |bags| for padding
    and, with include_last_offset, for indices past the last offset."""
    numel = indices.get_size()[0]
    load_off, load_idx = to_loader(offsets, I64), to_loader(indices, I64)

    def started(ops: Any, idx: Index, b: Expr) -> Any:
        return ops.le(load_off(ops, [b]), ops.index_expr(idx[0], I64))

    bag = count_where(ctx, [numel], bags, started).make_loader()

    def offset2bag(ops: Any, idx: Index) -> Any:
        return ops.sub(bag(ops, idx), const(ops, 1))

    def target(ops: Any, idx: Index) -> Any:
        b = offset2bag(ops, idx)
        keep = ops.ge(b, const(ops, 0))
        if padding_idx >= 0:
            keep = ops.logical_and(keep, ops.ne(load_idx(ops, idx), const(ops, padding_idx)))
        if include_last_offset:
            end = load_off(ops, [bags])
            keep = ops.logical_and(keep, ops.lt(ops.index_expr(idx[0], I64), end))
        return ops.where(keep, b, ops.index_expr(bags, I64))

    return Pointwise([numel], I64, target), Pointwise([numel], I64, offset2bag)


def _bag_size(counts: TensorValue, size: Expr, bags: Expr) -> Pointwise:
    """The non-padding count per bag, |size| long (export's size: like
    offsets for _embedding_bag_forward_only, one slot more than the bags
    with include_last_offset, that slot 0)."""
    load = counts.make_loader()

    def inner(ops: Any, idx: Index) -> Any:
        inside = ops.lt(ops.index_expr(idx[0], I64), ops.index_expr(bags, I64))
        return ops.where(inside, load(ops, idx), const(ops, 0))

    return Pointwise([size], I64, inner)


def _divide_by_count(values: TensorValue, counts: TensorValue) -> Pointwise:
    acc = values.dtype
    load_v, load_c = values.make_loader(), counts.make_loader()

    def inner(ops: Any, idx: Index) -> Any:
        n = load_c(ops, [idx[0]])
        mean = ops.truediv(load_v(ops, idx), ops.to_dtype(n, acc))
        return ops.where(ops.gt(n, const(ops, 0)), mean, const(ops, 0.0, acc))

    return Pointwise(list(values.get_size()), acc, inner)


def _max_indices(
    ctx: LoweringContext,
    indices: TensorValue,
    rows: TensorValue,
    best: Buffer,
    spread: TensorValue,
    bags: Expr,
) -> TensorValue:
    """max mode: the weight row that gave each bag's max (the first one, as
    eager keeps the first maximum), 0 for an empty bag. A second scatter
    (amin) finds the first position matching its bag's max."""
    numel, dim = rows.get_size()
    load_rows, load_best, load_bag = rows.make_loader(), best.make_loader(), spread.make_loader()

    def candidate(ops: Any, idx: Index) -> Any:
        b = ops.indirect_indexing(load_bag(ops, idx), bags + 1, "embedding_bag: bag", wrap=False)
        hit = ops.eq(load_rows(ops, idx), load_best(ops, [b, idx[1]]))
        return ops.where(hit, ops.index_expr(idx[0], I64), ops.index_expr(numel, I64))

    positions = Pointwise([numel, dim], I64, candidate)
    first = scatter_rows(ctx, "embedding_bag", [bags + 1, dim], numel, 0, spread, positions, "amin")
    load_first, load_idx = first.make_loader(), to_loader(indices, I64)

    def inner(ops: Any, idx: Index) -> Any:
        p = load_first(ops, idx)
        found = ops.lt(p, ops.index_expr(numel, I64))

        def row() -> Any:
            at = ops.indirect_indexing(p, numel, "embedding_bag: position", wrap=False)
            return load_idx(ops, [at])

        return ops.where(found, ops.masked(found, row, 0), const(ops, 0))

    return Pointwise([bags, dim], I64, inner)
