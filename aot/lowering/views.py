"""View lowerings: reshape, permute, expand, slice, select, squeeze, ... and
the copies that only move data (repeat, flip; cat and constant_pad_nd,
which need masked loads, are in indexing.py).

[Note: views] A view of a Buffer or ReinterpretView stays a ReinterpretView
(the same storage with another Layout) whenever the result has strides:
permute, expand (stride 0), select, slice with a step, unsqueeze, squeeze,
diagonal, unfold, and reshape when torch could view it too. A view of an
unrealized value (Pointwise, GenericView) is a GenericView: an index rewrite
inlined into whatever reads it. Reshape that has no strides uses FloorDiv and
ModularIndexing, grouping dims whose products match so that merged or split
dims stay cheap (only the dims of one group are unflattened). Nothing here
realizes a value: deciding what goes to memory is the scheduler's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, GenericView, Layout, ReinterpretView, TensorValue
from ..ir.symbols import FloorDiv, ModularIndexing, contiguous_strides, product
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
Expr = sympy.Expr
Index = Sequence[Expr]

# Slice bounds at or above this are "to the end" (Python's sys.maxsize in FX).
_HUGE = 2**62


# -- helpers shared with indexing.py and creation.py ---------------------------------


def normalize_dim(dim: int, ndim: int) -> int:
    """|dim| in [0, ndim) (negative dims count from the end)."""
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"dim {dim} is out of range for a {ndim}-d tensor")
    return dim + rank if dim < 0 else dim


def sym(value: Any) -> Expr:
    """An int, SymInt-derived sympy expression or sympy number as an Expr."""
    return value if isinstance(value, sympy.Basic) else sympy.Integer(int(value))


def sym_list(values: Sequence[Any]) -> list[Expr]:
    return [sym(v) for v in values]


def known_eq(a: Expr, b: Expr) -> bool:
    """True when a == b is provable (positive size symbols)."""
    return a == b or sympy.expand(a - b) == 0


def known_lt(a: Expr, b: Expr) -> bool | None:
    """a < b if decidable from the symbols' assumptions, else None."""
    diff = sympy.expand(b - a)
    if diff.is_positive:
        return True
    if diff.is_nonpositive:
        return False
    return None


def strided(value: TensorValue) -> tuple[Buffer, Layout] | None:
    """(buffer, layout) if |value| lives in memory with strides."""
    if isinstance(value, Buffer):
        return value, value.layout
    if isinstance(value, ReinterpretView):
        return value.data, value.layout
    return None


def zero_of(dtype: torch.dtype) -> float | int | bool:
    """The 0 of |dtype| as a Python scalar (for ops.masked's |other|)."""
    return cast_scalar(0, dtype)


def cast_scalar(value: Any, dtype: torch.dtype) -> float | int | bool:
    if dtype == torch.bool:
        return bool(value)
    if dtype.is_floating_point:
        return float(value)
    return int(value)


def index_value(ops: Any, expr: Expr) -> Any:
    """An index expression as an int64 value (a constant when it is one)."""
    expr = sym(expr)
    if expr.is_Integer:
        return ops.constant(int(expr), torch.int64)
    return ops.index_expr(expr, torch.int64)


def _restride(value: TensorValue, layout: Layout, reindex: Callable[[Index], Index]) -> TensorValue:
    """The view of |value| with |layout| if it is strided, else a GenericView."""
    if (base := strided(value)) is not None:
        return ReinterpretView(base[0], layout)
    return GenericView(value, list(layout.sizes), reindex)


def _layout_of(value: TensorValue) -> Layout:
    """|value|'s layout (contiguous for unrealized values: only sizes matter then)."""
    base = strided(value)
    return base[1] if base is not None else Layout.contiguous(value.get_size())


# -- permute, expand, squeeze, select, slice -------------------------------------------


def permute(value: TensorValue, dims: Sequence[int]) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    dims = [normalize_dim(d, ndim) for d in dims]
    if sorted(dims) != list(range(ndim)):
        raise ValueError(f"permute dims {dims} are not a permutation of {ndim} dims")
    new = Layout(
        tuple(layout.sizes[d] for d in dims), tuple(layout.strides[d] for d in dims), layout.offset
    )

    def reindex(index: Index) -> Index:
        out: list[Expr] = [sympy.Integer(0)] * ndim
        for k, d in enumerate(dims):
            out[d] = index[k]
        return out

    return _restride(value, new, reindex)


def transpose(value: TensorValue, dim0: int, dim1: int) -> TensorValue:
    ndim = len(value.get_size())
    if ndim == 0:
        return value
    dims = list(range(ndim))
    d0, d1 = normalize_dim(dim0, ndim), normalize_dim(dim1, ndim)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(value, dims)


def expand(value: TensorValue, sizes: Sequence[Any]) -> TensorValue:
    layout = _layout_of(value)
    old = list(layout.sizes)
    new = sym_list(sizes)
    lead = len(new) - len(old)
    if lead < 0:
        raise ValueError(f"expand to {new} has fewer dims than the input's {old}")
    out_sizes: list[Expr] = []
    out_strides: list[Expr] = []
    broadcast: list[bool] = []
    for k, size in enumerate(new):
        if k < lead:
            out_sizes.append(size)
            out_strides.append(sympy.Integer(0))
            broadcast.append(True)
            continue
        have, stride = old[k - lead], layout.strides[k - lead]
        if size == -1 or known_eq(size, have):
            out_sizes.append(have)
            out_strides.append(stride)
            broadcast.append(False)
        elif have == 1:
            out_sizes.append(size)
            out_strides.append(sympy.Integer(0))
            broadcast.append(True)
        else:
            raise ValueError(f"cannot expand size {have} to {size} (dim {k})")
    new_layout = Layout(tuple(out_sizes), tuple(out_strides), layout.offset)

    def reindex(index: Index) -> Index:
        return [sympy.Integer(0) if broadcast[k] else index[k] for k in range(lead, len(new))]

    return _restride(value, new_layout, reindex)


def unsqueeze(value: TensorValue, dim: int) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    dim = normalize_dim(dim, ndim + 1)
    stride = layout.sizes[dim] * layout.strides[dim] if dim < ndim else sympy.Integer(1)
    new = Layout(
        layout.sizes[:dim] + (sympy.Integer(1),) + layout.sizes[dim:],
        layout.strides[:dim] + (stride,) + layout.strides[dim:],
        layout.offset,
    )
    return _restride(value, new, lambda index: list(index[:dim]) + list(index[dim + 1 :]))


def squeeze(value: TensorValue, dims: Sequence[int] | None = None) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    wanted = range(ndim) if dims is None else [normalize_dim(d, ndim) for d in dims]
    drop = sorted({d for d in wanted if ndim > 0 and layout.sizes[d] == 1})
    if not drop:
        return value
    keep = [d for d in range(ndim) if d not in drop]
    new = Layout(
        tuple(layout.sizes[d] for d in keep), tuple(layout.strides[d] for d in keep), layout.offset
    )

    def reindex(index: Index) -> Index:
        out: list[Expr] = [sympy.Integer(0)] * ndim
        for k, d in enumerate(keep):
            out[d] = index[k]
        return out

    return _restride(value, new, reindex)


def select(value: TensorValue, dim: int, index: Any) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    dim = normalize_dim(dim, ndim)
    at = sym(index)
    if at.is_Integer and int(at) < 0:
        at = at + layout.sizes[dim]
    new = Layout(
        layout.sizes[:dim] + layout.sizes[dim + 1 :],
        layout.strides[:dim] + layout.strides[dim + 1 :],
        layout.offset + at * layout.strides[dim],
    )
    return _restride(value, new, lambda idx: list(idx[:dim]) + [at] + list(idx[dim:]))


def slice_bound(value: Any, size: Expr, default: Expr, *, is_end: bool) -> Expr:
    """A slice bound clamped to [0, size] like torch. A start that is not
    provably in range is assumed to be (it enters index math; export has
    checked it); an end is clamped with Min (it only bounds the size)."""
    if value is None:
        return default
    bound = sym(value)
    if bound.is_Integer and int(bound) >= _HUGE:
        return size
    if bound.is_Integer and int(bound) < 0:
        bound = bound + size
    if bound.is_Integer and size.is_Integer:
        return sympy.Integer(min(max(int(bound), 0), int(size)))
    if bound.is_Integer and int(bound) < 0:
        return sympy.Integer(0)
    return sympy.Min(bound, size) if is_end else bound


def slice_(
    value: TensorValue, dim: int = 0, start: Any = None, end: Any = None, step: int = 1
) -> TensorValue:
    layout = _layout_of(value)
    dim = normalize_dim(dim, len(layout.sizes))
    size = layout.sizes[dim]
    step_ = sym(step)
    if not (step_.is_Integer and int(step_) > 0):
        raise ValueError(f"slice step must be a positive integer, got {step}")
    lo = slice_bound(start, size, sympy.Integer(0), is_end=False)
    hi = slice_bound(end, size, size, is_end=True)
    length = FloorDiv(hi - lo + step_ - 1, step_) if step_ != 1 else hi - lo
    if length.is_Integer and int(length) < 0:
        length = sympy.Integer(0)
    new = Layout(
        layout.sizes[:dim] + (length,) + layout.sizes[dim + 1 :],
        layout.strides[:dim] + (layout.strides[dim] * step_,) + layout.strides[dim + 1 :],
        layout.offset + lo * layout.strides[dim],
    )

    def reindex(index: Index) -> Index:
        out = list(index)
        out[dim] = index[dim] * step_ + lo
        return out

    return _restride(value, new, reindex)


def split_with_sizes(value: TensorValue, sizes: Sequence[Any], dim: int = 0) -> list[TensorValue]:
    pieces, start = [], sympy.Integer(0)
    for size in sym_list(sizes):
        pieces.append(slice_(value, dim, start, start + size))
        start = start + size
    return pieces


def split(value: TensorValue, split_size: Any, dim: int = 0) -> list[TensorValue]:
    total = value.get_size()[normalize_dim(dim, len(value.get_size()))]
    chunk = sym(split_size)
    if not (total.is_Integer and chunk.is_Integer):
        if known_eq(total, chunk):
            return [value]
        raise ValueError(f"split of a dynamic dim ({total}) into chunks of {chunk}")
    n, c = int(total), max(int(chunk), 1)
    sizes = [min(c, n - k) for k in range(0, n, c)] or [0]
    return split_with_sizes(value, sizes, dim)


def diagonal(value: TensorValue, offset: int = 0, dim1: int = 0, dim2: int = 1) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    d1, d2 = normalize_dim(dim1, ndim), normalize_dim(dim2, ndim)
    s1, s2 = layout.sizes[d1], layout.sizes[d2]
    length = sympy.Max(0, sympy.Min(s1, s2 - offset) if offset >= 0 else sympy.Min(s1 + offset, s2))
    start = offset * layout.strides[d2] if offset >= 0 else -offset * layout.strides[d1]
    keep = [d for d in range(ndim) if d not in (d1, d2)]
    new = Layout(
        tuple(layout.sizes[d] for d in keep) + (length,),
        tuple(layout.strides[d] for d in keep) + (layout.strides[d1] + layout.strides[d2],),
        layout.offset + start,
    )

    def reindex(index: Index) -> Index:
        out: list[Expr] = [sympy.Integer(0)] * ndim
        for k, d in enumerate(keep):
            out[d] = index[k]
        out[d1] = index[-1] + max(0, -offset)
        out[d2] = index[-1] + max(0, offset)
        return out

    return _restride(value, new, reindex)


def unfold(value: TensorValue, dim: int, size: int, step: int) -> TensorValue:
    layout = _layout_of(value)
    ndim = len(layout.sizes)
    d = normalize_dim(dim, ndim)
    have = layout.sizes[d] if ndim else sympy.Integer(1)
    stride = layout.strides[d] if ndim else sympy.Integer(1)
    count = FloorDiv(have - size, step) + 1
    sizes = list(layout.sizes) if ndim else []
    strides = list(layout.strides) if ndim else []
    if ndim:
        sizes[d], strides[d] = count, stride * step
    new = Layout(tuple(sizes) + (sym(size),), tuple(strides) + (stride,), layout.offset)

    def reindex(index: Index) -> Index:
        if not ndim:
            return []
        out = list(index[:-1])
        out[d] = index[d] * step + index[-1]
        return out

    return _restride(value, new, reindex)


# -- reshape ----------------------------------------------------------------------------


def infer_size(sizes: Sequence[Any], numel: Expr) -> list[Expr]:
    """|sizes| with one -1 resolved against |numel|."""
    out = sym_list(sizes)
    holes = [k for k, s in enumerate(out) if s == -1]
    if len(holes) > 1:
        raise ValueError(f"only one dim can be -1 in {list(sizes)}")
    if holes:
        rest = product([s for s in out if s != -1])
        out[holes[0]] = sympy.simplify(numel / rest) if rest != 0 else sympy.Integer(0)
    if not known_eq(product(out), numel):
        raise ValueError(f"shape {out} is invalid for {numel} elements")
    return out


def _view_strides(old: Layout, new: Sequence[Expr]) -> list[Expr] | None:
    """Strides of a no-copy view of |old| with sizes |new| (torch's computeStride),
    or None when there are none or they cannot be proven."""
    if not old.sizes:
        return [sympy.Integer(1)] * len(new)
    if any(size == 0 for size in old.sizes):
        return contiguous_strides(list(new))
    out: list[Expr] = [sympy.Integer(0)] * len(new)
    view_d = len(new) - 1
    base = old.strides[-1]
    tensor_numel: Expr = sympy.Integer(1)
    view_numel: Expr = sympy.Integer(1)
    for d in reversed(range(len(old.sizes))):
        tensor_numel = tensor_numel * old.sizes[d]
        if d == 0 or (
            old.sizes[d - 1] != 1 and not known_eq(old.strides[d - 1], tensor_numel * base)
        ):
            while view_d >= 0:
                less = known_lt(view_numel, tensor_numel)
                if less is None:
                    return None
                if not (less or new[view_d] == 1):
                    break
                out[view_d] = view_numel * base
                view_numel = view_numel * new[view_d]
                view_d -= 1
            if not known_eq(view_numel, tensor_numel):
                return None
            if d > 0:
                base = old.strides[d - 1]
                tensor_numel = view_numel = sympy.Integer(1)
    return out if view_d == -1 else None


def _groups(old: Sequence[Expr], new: Sequence[Expr]) -> list[tuple[range, range]] | None:
    """Splits both shapes into runs with equal products (old dims, new dims)."""
    groups: list[tuple[range, range]] = []
    i = j = 0
    while i < len(old) or j < len(new):
        i0, j0 = i, j
        po: Expr = sympy.Integer(1)
        pn: Expr = sympy.Integer(1)
        if i < len(old):
            po, i = old[i], i + 1
        if j < len(new):
            pn, j = new[j], j + 1
        while not known_eq(po, pn):
            less = known_lt(po, pn)
            if less and i < len(old):
                po, i = po * old[i], i + 1
            elif less is False and j < len(new):
                pn, j = pn * new[j], j + 1
            else:
                return None
        groups.append((range(i0, i), range(j0, j)))
    return groups


def reshape_indexer(old: Sequence[Expr], new: Sequence[Expr]) -> Callable[[Index], Index]:
    """Maps an index of shape |new| to the same element's index in shape |old|."""
    groups = _groups(old, new) or [(range(len(old)), range(len(new)))]

    def reindex(index: Index) -> Index:
        out: list[Expr] = [sympy.Integer(0)] * len(old)
        for olds, news in groups:
            strides = contiguous_strides([new[k] for k in news])
            flat = sympy.Add(*[index[k] * s for k, s in zip(news, strides, strict=True)])
            ostrides = contiguous_strides([old[k] for k in olds])
            for pos, (k, stride) in enumerate(zip(olds, ostrides, strict=True)):
                if pos == 0:
                    out[k] = FloorDiv(flat, stride)
                else:
                    out[k] = ModularIndexing(flat, stride, old[k])
        return out

    return reindex


def reshape(value: TensorValue, sizes: Sequence[Any]) -> TensorValue:
    old = value.get_size()
    new = infer_size(sizes, product(old))
    if len(new) == len(old) and all(known_eq(a, b) for a, b in zip(old, new, strict=True)):
        return value
    if (base := strided(value)) is not None:
        buffer, layout = base
        if Layout(layout.sizes, layout.strides).is_contiguous():
            return ReinterpretView(
                buffer, Layout(tuple(new), tuple(contiguous_strides(new)), layout.offset)
            )
        strides = _view_strides(layout, new)
        if strides is not None:
            return ReinterpretView(buffer, Layout(tuple(new), tuple(strides), layout.offset))
    return GenericView(value, new, reshape_indexer(old, new))


# -- data movement that is not a view ---------------------------------------------------


def repeat(value: TensorValue, repeats: Sequence[Any]) -> TensorValue:
    old = value.get_size()
    reps = sym_list(repeats)
    lead = len(reps) - len(old)
    if lead < 0:
        raise ValueError(f"repeat {list(repeats)} has fewer dims than the input ({len(old)})")
    padded = [sympy.Integer(1)] * lead + list(old)
    size = [r * s for r, s in zip(reps, padded, strict=True)]

    def reindex(index: Index) -> Index:
        return [
            index[k] if reps[k] == 1 else ModularIndexing(index[k], 1, padded[k])
            for k in range(lead, len(reps))
        ]

    return GenericView(value, size, reindex)


def flip(value: TensorValue, dims: Sequence[int]) -> TensorValue:
    size = value.get_size()
    flipped = {normalize_dim(d, len(size)) for d in dims}

    def reindex(index: Index) -> Index:
        return [size[k] - 1 - index[k] if k in flipped else index[k] for k in range(len(size))]

    return GenericView(value, size, reindex)


def as_strided(
    ctx: LoweringContext,
    value: TensorValue,
    size: Sequence[Any],
    stride: Sequence[Any],
    storage_offset: Any = None,
) -> TensorValue:
    base = strided(value)
    if base is None:
        buffer = ctx.realize_contiguous(value)
        base = (buffer, buffer.layout)
    offset = base[1].offset if storage_offset is None else sym(storage_offset)
    return ReinterpretView(base[0], Layout(tuple(sym_list(size)), tuple(sym_list(stride)), offset))


def register(registry: LoweringRegistry) -> None:
    reg = registry.register

    def same(ctx: LoweringContext, x: TensorValue, *args: Any, **kwargs: Any) -> TensorValue:
        return x

    reg(aten.view.default, aten._unsafe_view.default, aten.reshape.default)(
        lambda ctx, x, size: reshape(x, size)
    )
    reg(aten.permute.default)(lambda ctx, x, dims: permute(x, dims))
    reg(aten.transpose.int)(lambda ctx, x, d0, d1: transpose(x, d0, d1))
    reg(aten.t.default)(lambda ctx, x: transpose(x, 0, 1) if len(x.get_size()) == 2 else x)
    reg(aten.expand.default)(lambda ctx, x, size, *, implicit=False: expand(x, size))
    reg(aten.unsqueeze.default)(lambda ctx, x, dim: unsqueeze(x, dim))
    reg(aten.squeeze.default)(lambda ctx, x: squeeze(x))
    reg(aten.squeeze.dim)(lambda ctx, x, dim: squeeze(x, [dim]))
    reg(aten.squeeze.dims)(lambda ctx, x, dims: squeeze(x, dims))
    reg(aten.select.int)(lambda ctx, x, dim, index: select(x, dim, index))
    reg(aten.slice.Tensor)(
        lambda ctx, x, dim=0, start=None, end=None, step=1: slice_(x, dim, start, end, step)
    )
    reg(aten.split_with_sizes.default)(lambda ctx, x, sizes, dim=0: split_with_sizes(x, sizes, dim))
    reg(aten.split.Tensor)(lambda ctx, x, split_size, dim=0: split(x, split_size, dim))
    reg(aten.unbind.int)(
        lambda ctx, x, dim=0: [select(x, dim, k) for k in range(int(x.get_size()[dim]))]
    )
    reg(aten.diagonal.default)(
        lambda ctx, x, offset=0, dim1=0, dim2=1: diagonal(x, offset, dim1, dim2)
    )
    reg(aten.unfold.default)(lambda ctx, x, dim, size, step: unfold(x, dim, size, step))
    reg(aten.as_strided.default)(as_strided)
    reg(aten.alias.default, aten.clone.default, aten.lift_fresh_copy.default)(same)
    reg(aten.detach.default, aten.contiguous.default)(same)
    reg(aten.repeat.default)(lambda ctx, x, repeats: repeat(x, repeats))
    reg(aten.flip.default)(lambda ctx, x, dims: flip(x, dims))
