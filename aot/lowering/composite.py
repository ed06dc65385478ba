"""Ops lowered by composing other lowerings: the *_copy variants of views,
diagonal/as_strided/masked scatters, addbmm/addmv/_trilinear, distances
(cdist, pdist, dist) and nonzero_static; composite_bins.py holds the ops
that scatter into bins (segment_reduce, histograms, embedding_bag). No new
kernels: each op is built from the views, pointwise bodies, reductions and
the scan, scatter and GEMM extern kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, ComputedBuffer, Pointwise, Reduction, ReinterpretView, TensorValue
from ..ir.symbols import FloorDiv, ModularIndexing, contiguous_strides, product
from . import creation, extern, scan, scatter, views
from .common import (
    Promotion,
    broadcast_shapes,
    broadcast_to,
    compute_dtype,
    identity,
    make_pointwise,
    normalize_dim,
    to_loader,
)
from .context import LoweringContext
from .reductions import make_reduction, vector_norm
from .registry import LoweringRegistry

aten = torch.ops.aten
Expr = sympy.Expr
Index = Sequence[Expr]
I64 = torch.int64


def register(registry: LoweringRegistry) -> None:
    from . import composite_bins  # imports this module's helpers

    _register_view_copies(registry)
    reg = registry.register
    reg(aten.diagonal_scatter.default)(lower_diagonal_scatter)
    reg(aten.as_strided_scatter.default)(lower_as_strided_scatter)
    reg(aten.masked_scatter.default)(lower_masked_scatter)
    reg(aten.addmv.default)(lower_addmv)
    reg(aten.addbmm.default)(lower_addbmm)
    reg(aten._trilinear.default)(lower_trilinear)
    reg(aten._cdist_forward.default)(lower_cdist)
    reg(aten._pdist_forward.default)(lower_pdist)
    reg(aten.dist.default)(lower_dist)
    reg(aten.nonzero_static.default)(lower_nonzero_static)
    composite_bins.register(registry)


# -- helpers ----------------------------------------------------------------------------


def const(ops: Any, value: Any, dtype: torch.dtype = I64) -> Any:
    return ops.constant(value, dtype)


def finish(ops: Any, value: Any, cdt: torch.dtype, dtype: torch.dtype) -> Any:
    return value if cdt == dtype else ops.to_dtype(value, dtype)


def flatten(value: TensorValue) -> tuple[TensorValue, Expr]:
    """|value| as a 1-d view, and its element count."""
    numel = product(value.get_size())
    return views.reshape(value, [numel]), numel


def is_zero(size: Expr) -> bool:
    return sympy.sympify(size) == 0


def count_where(
    ctx: LoweringContext,
    ranges: Sequence[Expr],
    over: Expr,
    hit: Callable[[Any, Index, Expr], Any],
) -> ComputedBuffer:
    """An int64 buffer over |ranges|: how many r in [0, over) make
    hit(ops, index, r) true (a sum reduction of bools)."""

    def inner(ops: Any, index: Index, rindex: Index) -> Any:
        return ops.to_dtype(hit(ops, index, rindex[0]), I64)

    reduction = Reduction(
        list(ranges),
        I64,
        reduction_ranges=[sympy.sympify(over)],
        reduction_type="sum",
        inner_fn=inner,
        src_dtype=I64,
    )
    return ctx.reduce(reduction)


def scatter_rows(
    ctx: LoweringContext,
    op: str,
    size: Sequence[Expr],
    fill: float | int,
    dim: int,
    index: TensorValue,
    src: TensorValue,
    reduce: str = "sum",
    include_self: bool = True,
) -> Buffer:
    """A |fill|ed buffer of |size| (dtype of |src|) with |src| scattered
    along |dim| at |index| ([Note: composite scatters] in composite_bins.py)."""
    base = creation.full(size, fill, src.dtype)
    return scatter.scatter(ctx, op, base, dim, index, src, reduce=reduce, include_self=include_self)


# -- *_copy views: the view's values, materialised (outputs are always fresh) -------------


def _narrow_copy(ctx: LoweringContext, x: TensorValue, dim: int, start: Any, length: Any) -> Any:
    size = x.get_size()[normalize_dim(dim, len(x.get_size()))]
    begin = views.sym(start)
    if begin.is_Integer and int(begin) < 0:  # narrow wraps a negative start once
        begin = begin + size
    return views.slice_(x, dim, begin, begin + views.sym(length))


def _unbind_copy(ctx: LoweringContext, x: TensorValue, dim: int = 0) -> list[TensorValue]:
    count = int(x.get_size()[normalize_dim(dim, len(x.get_size()))])
    return [views.select(x, dim, k) for k in range(count)]


def _register_view_copies(registry: LoweringRegistry) -> None:
    reg = registry.register
    reg(aten.view_copy.default)(lambda ctx, x, size: views.reshape(x, size))
    reg(aten.permute_copy.default)(lambda ctx, x, dims: views.permute(x, dims))
    reg(aten.transpose_copy.int)(lambda ctx, x, d0, d1: views.transpose(x, d0, d1))
    reg(aten.t_copy.default)(
        lambda ctx, x: views.transpose(x, 0, 1) if len(x.get_size()) == 2 else x
    )
    reg(aten.expand_copy.default)(lambda ctx, x, size, *, implicit=False: views.expand(x, size))
    reg(aten.unsqueeze_copy.default)(lambda ctx, x, dim: views.unsqueeze(x, dim))
    reg(aten.squeeze_copy.default)(lambda ctx, x: views.squeeze(x))
    reg(aten.squeeze_copy.dim)(lambda ctx, x, dim: views.squeeze(x, [dim]))
    reg(aten.squeeze_copy.dims)(lambda ctx, x, dims: views.squeeze(x, dims))
    reg(aten.select_copy.int)(lambda ctx, x, dim, index: views.select(x, dim, index))
    reg(aten.slice_copy.Tensor)(
        lambda ctx, x, dim=0, start=None, end=None, step=1: views.slice_(x, dim, start, end, step)
    )
    reg(aten.narrow_copy.default)(_narrow_copy)
    reg(aten.unbind_copy.int)(_unbind_copy)
    reg(aten.split_copy.Tensor)(lambda ctx, x, size, dim=0: views.split(x, size, dim))
    reg(aten.split_with_sizes_copy.default)(
        lambda ctx, x, sizes, dim=0: views.split_with_sizes(x, sizes, dim)
    )
    reg(aten.diagonal_copy.default)(
        lambda ctx, x, offset=0, dim1=0, dim2=1: views.diagonal(x, offset, dim1, dim2)
    )
    reg(aten.unfold_copy.default)(lambda ctx, x, dim, size, step: views.unfold(x, dim, size, step))
    reg(aten.as_strided_copy.default)(views.as_strided)
    reg(aten.alias_copy.default, aten.detach_copy.default)(lambda ctx, x: x)


# -- scatters into views ----------------------------------------------------------------


def lower_diagonal_scatter(
    ctx: LoweringContext,
    x: TensorValue,
    src: TensorValue,
    offset: int = 0,
    dim1: int = 0,
    dim2: int = 1,
) -> Pointwise:
    """x with x.diagonal(offset, dim1, dim2) replaced by src: an element is
    on the diagonal when idx[dim2] - idx[dim1] == offset."""
    shape = x.get_size()
    d1, d2 = normalize_dim(dim1, len(shape)), normalize_dim(dim2, len(shape))
    keep = [d for d in range(len(shape)) if d not in (d1, d2)]
    dtype = x.dtype
    cdt = compute_dtype(dtype)
    load_x, load_s = to_loader(x, cdt), to_loader(identity(src, dtype), cdt)
    lead = max(0, -offset)  # the diagonal's first element sits at idx[dim1] == lead

    def inner(ops: Any, idx: Index) -> Any:
        gap = ops.index_expr(idx[d2] - idx[d1], I64)
        on = ops.eq(gap, const(ops, offset))
        at = [idx[d] for d in keep] + [idx[d1] - lead]
        new = ops.masked(on, lambda: load_s(ops, at), views.zero_of(cdt))
        return finish(ops, ops.where(on, new, load_x(ops, idx)), cdt, dtype)

    return Pointwise(list(shape), dtype, inner)


def lower_as_strided_scatter(
    ctx: LoweringContext,
    x: TensorValue,
    src: TensorValue,
    size: Sequence[Any],
    stride: Sequence[Any],
    storage_offset: Any = None,
) -> TensorValue:
    """x (contiguous) with its as_strided(size, stride, offset) view replaced
    by src: a put of src at each view element's flat storage position."""
    sizes, strides = views.sym_list(size), views.sym_list(stride)
    start = views.sym(storage_offset or 0)

    def position(ops: Any, idx: Index) -> Any:
        flat = start + sympy.Add(*[i * s for i, s in zip(idx, strides, strict=True)])
        return ops.index_expr(flat, I64)

    positions = Pointwise(sizes, I64, position)
    # A copy of a view: ctx.realize_contiguous (used by put) takes a
    # contiguous prefix view for its whole buffer.
    values = identity(src) if isinstance(src, ReinterpretView) else src
    return scatter.lower_put(ctx, x, positions, values)


def lower_masked_scatter(
    ctx: LoweringContext, x: TensorValue, mask: TensorValue, source: TensorValue
) -> TensorValue:
    """where(mask, source.flatten()[k], x) with k the number of true mask
    elements before this one (an inclusive cumsum of the mask, minus one)."""
    shape = broadcast_shapes(x.get_size(), mask.get_size())
    full_x = broadcast_to(x, shape)
    if is_zero(product(shape)):
        return identity(full_x)
    full_mask = broadcast_to(mask, shape)
    flat_mask, numel = flatten(identity(full_mask, torch.bool))
    ranks = views.reshape(scan.lower_cumsum(ctx, flat_mask, 0), shape).make_loader()
    flat_src, limit = flatten(source)
    dtype = x.dtype
    cdt = compute_dtype(dtype)
    load_x, load_m = to_loader(full_x, cdt), to_loader(full_mask, torch.bool)
    load_s = to_loader(identity(flat_src, dtype), cdt)

    def inner(ops: Any, idx: Index) -> Any:
        hit = load_m(ops, idx)

        def take() -> Any:
            k = ops.sub(ranks(ops, idx), const(ops, 1))
            at = ops.indirect_indexing(k, limit, "masked_scatter: source", wrap=False)
            return load_s(ops, [at])

        new = ops.masked(hit, take, views.zero_of(cdt))
        return finish(ops, ops.where(hit, new, load_x(ops, idx)), cdt, dtype)

    return Pointwise(list(shape), dtype, inner)


# -- matrix products ----------------------------------------------------------------------


def lower_addmv(
    ctx: LoweringContext,
    bias: TensorValue,
    mat: TensorValue,
    vec: TensorValue,
    *,
    beta: float = 1,
    alpha: float = 1,
) -> TensorValue:
    """beta * bias + alpha * (mat @ vec): an addmm with vec as one column."""
    rows = mat.get_size()[0]
    column_bias = views.unsqueeze(bias, -1) if len(bias.get_size()) == 1 else bias
    out = extern.lower_addmm(
        ctx, column_bias, mat, views.unsqueeze(vec, -1), beta=beta, alpha=alpha
    )
    return views.reshape(out, [rows])


def lower_addbmm(
    ctx: LoweringContext,
    bias: TensorValue,
    batch1: TensorValue,
    batch2: TensorValue,
    *,
    beta: float = 1,
    alpha: float = 1,
) -> TensorValue:
    """beta * bias + alpha * sum_b batch1[b] @ batch2[b]: one addmm of
    [n, B*k] by [B*k, p] (the batch folded into the inner dimension)."""
    batches, rows, inner = batch1.get_size()
    cols = batch2.get_size()[2]
    left = views.reshape(views.permute(batch1, [1, 0, 2]), [rows, batches * inner])
    right = views.reshape(batch2, [batches * inner, cols])
    return extern.lower_addmm(ctx, bias, left, right, beta=beta, alpha=alpha)


def lower_trilinear(
    ctx: LoweringContext,
    i1: TensorValue,
    i2: TensorValue,
    i3: TensorValue,
    expand1: Sequence[int],
    expand2: Sequence[int],
    expand3: Sequence[int],
    sumdim: Sequence[int],
    unroll_dim: int = 1,
) -> TensorValue:
    """sum over |sumdim| of i1 * i2 * i3, each first unsqueezed at its
    expand dims (nn.functional.bilinear). The product stays in float32 for
    bfloat16 inputs, so only the sum is rounded."""
    parts = []
    for value, expand in ((i1, expand1), (i2, expand2), (i3, expand3)):
        for d in sorted(expand):
            value = views.unsqueeze(value, d)
        parts.append(value)
    dtype = i1.dtype
    acc = compute_dtype(dtype)
    prod = make_pointwise(lambda ops, a, b, c: ops.mul(ops.mul(a, b), c), *parts, out_dtype=acc)
    if not sumdim:
        return identity(prod, dtype)
    dims = sorted({normalize_dim(d, len(prod.get_size())) for d in sumdim})
    return make_reduction(ctx, prod.get_size(), dims, "sum", prod.make_loader(), acc, dtype)


# -- distances ----------------------------------------------------------------------------


def lower_cdist(
    ctx: LoweringContext,
    x1: TensorValue,
    x2: TensorValue,
    p: float,
    compute_mode: int | None = None,
) -> TensorValue:
    """The p-norm of x1[..., i, :] - x2[..., j, :] over the last dim, batch
    dims broadcast. Always the direct difference (compute_mode's matmul
    form for p=2 is a speed trade eager makes at some accuracy cost)."""
    a, b = views.unsqueeze(x1, -2), views.unsqueeze(x2, -3)
    diff = make_pointwise(lambda ops, u, v: ops.sub(u, v), a, b)
    return vector_norm(ctx, diff, float(p), [-1])


def _pair_row(ops: Any, k: Any, n: Expr) -> Any:
    """The row i of pair k in the row-major list of pairs (i < j) of n rows.
    Row i starts at i * (2n - 1 - i) / 2; the float64 root of that quadratic
    is exact to within one row, fixed with integer tests."""
    f64 = torch.float64
    b = ops.index_expr(2 * n - 1, I64)
    fb, fk = ops.to_dtype(b, f64), ops.to_dtype(k, f64)
    root = ops.sqrt(ops.sub(ops.mul(fb, fb), ops.mul(const(ops, 8.0, f64), fk)))
    guess = ops.to_dtype(ops.floor(ops.mul(ops.sub(fb, root), const(ops, 0.5, f64))), I64)

    def start(i: Any) -> Any:
        return ops.floordiv(ops.mul(i, ops.sub(b, i)), const(ops, 2))

    one = const(ops, 1)
    up = ops.le(start(ops.add(guess, one)), k)
    down = ops.gt(start(guess), k)
    return ops.where(up, ops.add(guess, one), ops.where(down, ops.sub(guess, one), guess))


def lower_pdist(ctx: LoweringContext, x: TensorValue, p: float = 2.0) -> TensorValue:
    """The p-norm distance of every pair of rows i < j of x [n, m], in
    row-major pair order: the pair's rows are computed once per pair, then
    a norm reduction over m."""
    n, m = x.get_size()
    pairs = FloorDiv(n * (n - 1), 2)
    rows = ctx.compute(
        [pairs], I64, lambda ops, idx: _pair_row(ops, ops.index_expr(idx[0], I64), n)
    )
    load_row = rows.make_loader()
    cdt = compute_dtype(x.dtype)
    load_x = to_loader(x, cdt)

    def diff(ops: Any, idx: Index) -> Any:
        i = load_row(ops, [idx[0]])
        b = ops.index_expr(2 * n - 1, I64)
        first = ops.floordiv(ops.mul(i, ops.sub(b, i)), const(ops, 2))
        j = ops.add(ops.sub(ops.index_expr(idx[0], I64), first), ops.add(i, const(ops, 1)))
        at_i = ops.indirect_indexing(i, n, "pdist: row", wrap=False)
        at_j = ops.indirect_indexing(j, n, "pdist: row", wrap=False)
        value = ops.sub(load_x(ops, [at_i, idx[1]]), load_x(ops, [at_j, idx[1]]))
        return finish(ops, value, cdt, x.dtype)

    return vector_norm(ctx, Pointwise([pairs, m], x.dtype, diff), float(p), [-1])


def lower_dist(ctx: LoweringContext, a: TensorValue, b: TensorValue, p: float = 2) -> TensorValue:
    """norm(a - b, p) over every element (eager rounds the difference to the
    input dtype first, so does this)."""
    diff = make_pointwise(lambda ops, u, v: ops.sub(u, v), a, b)
    return vector_norm(ctx, diff, float(p))


# -- nonzero_static --------------------------------------------------------------------------


def lower_nonzero_static(
    ctx: LoweringContext, x: TensorValue, *, size: Any, fill_value: int = -1
) -> TensorValue:
    """The coordinates of x's first |size| nonzero elements (row-major),
    rows past the count filled with |fill_value|: a cumsum of the flat mask
    gives each nonzero element its row, a scatter writes its coordinates."""
    shape = list(x.get_size())
    ndim = len(shape)
    rows = views.sym(size)
    flat_x, numel = flatten(x)
    if ndim == 0 or is_zero(numel) or is_zero(rows):
        return creation.full([rows, ndim], fill_value, I64)
    mask = make_pointwise(
        lambda ops, v, z: ops.ne(v, z), flat_x, 0, promotion=Promotion.ALWAYS_BOOL
    )
    load_rank = scan.lower_cumsum(ctx, mask, 0).make_loader()
    load_mask = mask.make_loader()
    strides = contiguous_strides(shape)

    def target(ops: Any, idx: Index) -> Any:
        row = ops.sub(load_rank(ops, [idx[0]]), const(ops, 1))
        limit = ops.index_expr(rows, I64)
        keep = ops.logical_and(load_mask(ops, [idx[0]]), ops.lt(row, limit))
        return ops.where(keep, row, limit)

    def coordinate(ops: Any, idx: Index) -> Any:
        e, column = idx
        value = const(ops, 0)
        for d in range(ndim):
            at = ModularIndexing(e, strides[d], shape[d]) if d else FloorDiv(e, strides[0])
            hit = ops.eq(ops.index_expr(column, I64), const(ops, d))
            value = ops.where(hit, ops.index_expr(at, I64), value)
        return value

    grid = [numel, sympy.Integer(ndim)]
    index = Pointwise(grid, I64, lambda ops, idx: target(ops, idx))
    coords = Pointwise(grid, I64, coordinate)
    base = creation.full([rows + 1, ndim], fill_value, I64)
    out = scatter.scatter(ctx, "nonzero_static", base, 0, index, coords)
    return views.slice_(out, 0, 0, rows)
