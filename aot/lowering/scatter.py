"""Lowerings of the scatter family to ExternKernel nodes.

[Note: scatter kernels] Ops that write through an index tensor become one of
two extern kernels (aot/codegen/cpp/include/aotc_cpu_scatter.h), each
``out = copy of self, then scatter into out``:
- kind "scatter": aten.scatter (src, value, and the reduce="add"/"multiply"
  overloads), scatter_add, scatter_reduce.two (sum, prod, mean, amax, amin,
  include_self both ways) and index_reduce (its 1-D index read as a
  stride-0 view broadcast over the source). Inputs: self, index (int64),
  then src unless params["value"] holds a scalar; int32 indices are widened
  to int64 first. Indices are not wrapped:
  a negative or too-large index is a run-time OUT_OF_RANGE error, as eager
  raises.
- kind "index_put": index_put with more than indexing.MAX_REDUCTION_INDICES
  index positions (or a dynamic count), accumulate or not — index_add
  arrives as index_put(accumulate=True) after decomposition — and put (on
  flattened views). Inputs: self, values broadcast to the shape of
  self[indices], then one int64 view per index tensor broadcast to the
  index shape (stride 0 where broadcast). Negative indices wrap once.
Inputs stay strided views (no copies) unless a dtype conversion or an
unrealized value needs a buffer. The output is a fresh contiguous buffer.

Semantics the kernels fix where eager leaves them open: accumulation is
deterministic (no atomics: each output element is owned by one work item,
indices applied in index order), and a non-accumulating scatter with
duplicate indices keeps the last write in index order. Numerics follow
eager's CPU kernels on torch 2.13: scatter/scatter_add/scatter_reduce on
bfloat16 accumulate in float32 and round once per element, index_reduce and
index_put(accumulate) round after every step. [Note: scatter determinism] in
the header has the details; a GPU version needs atomics and will not be
deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, Layout, ReinterpretView, TensorValue
from .common import identity, normalize_dim
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
Expr = sympy.Expr
Strided = Buffer | ReinterpretView

SCATTER_DTYPES = (torch.float32, torch.bfloat16, torch.float64, torch.int64, torch.int32)
MAX_RANK = 8  # kScatterMaxRank in the header
REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")
# scatter(..., reduce=) spells two reductions its own way.
_SCATTER_REDUCE = {"add": "sum", "multiply": "prod"}


def register(registry: LoweringRegistry) -> None:
    reg = registry.register
    reg(aten.scatter.src)(lower_scatter_src)
    reg(aten.scatter.value)(lower_scatter_value)
    reg(aten.scatter.reduce)(lower_scatter_src_reduce)
    reg(aten.scatter.value_reduce)(lower_scatter_value_reduce)
    reg(aten.scatter_add.default)(lower_scatter_add)
    reg(aten.scatter_reduce.two)(lower_scatter_reduce)
    reg(aten.index_reduce.default)(lower_index_reduce)
    reg(aten.put.default)(lower_put)


# -- helpers -----------------------------------------------------------------------


def index_put_supported(dtype: torch.dtype) -> bool:
    """Whether the index_put kernel takes tensors of |dtype| (indexing.py
    keeps its gather forms for the others, bool among them)."""
    return dtype in SCATTER_DTYPES


def _check_dtype(op: str, dtype: torch.dtype) -> None:
    if dtype not in SCATTER_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in SCATTER_DTYPES)
        raise NotImplementedError(f"{op}: aotc's scatter kernels take {names}, got {dtype}")


def _check_rank(op: str, sizes: Sequence[Expr]) -> None:
    if len(sizes) > MAX_RANK:
        raise NotImplementedError(f"{op}: tensors of rank {len(sizes)} (at most {MAX_RANK})")


def _strided(value: Strided) -> tuple[Buffer, Layout]:
    if isinstance(value, ReinterpretView):
        return value.data, value.layout
    return value, value.layout


def _view(value: Strided, sizes: Sequence[Any], strides: Sequence[Any]) -> ReinterpretView:
    buffer, layout = _strided(value)
    return ReinterpretView(
        buffer,
        Layout(
            tuple(sympy.sympify(s) for s in sizes),
            tuple(sympy.sympify(s) for s in strides),
            layout.offset,
        ),
    )


def _at_least_1d(value: Strided) -> Strided:
    """A 0-d value as a 1-d view of one element."""
    return _view(value, [1], [1]) if len(value.get_size()) == 0 else value


def _broadcast(value: Strided, sizes: Sequence[Expr]) -> Strided:
    """|value| expanded to |sizes| (right-aligned; stretched and missing dims
    get stride 0), as a view."""
    _, layout = _strided(value)
    own_sizes, own_strides = list(layout.sizes), list(layout.strides)
    while len(own_sizes) > len(sizes) and own_sizes[0] == 1:  # leading 1s broadcast away
        own_sizes, own_strides = own_sizes[1:], own_strides[1:]
    if len(own_sizes) > len(sizes):
        raise ValueError(f"cannot broadcast {list(layout.sizes)} to {list(sizes)}")
    lead = len(sizes) - len(own_sizes)
    strides: list[Expr] = [sympy.Integer(0)] * lead
    for k, (size, stride) in enumerate(zip(own_sizes, own_strides, strict=True)):
        target = sympy.sympify(sizes[lead + k])
        if size == target:
            strides.append(stride)
        elif size == 1:
            strides.append(sympy.Integer(0))
        else:
            raise ValueError(f"cannot broadcast {own_sizes} to {list(sizes)}")
    if len(layout.sizes) == len(sizes) and all(
        s == t for s, t in zip(layout.strides, strides, strict=True)
    ):
        return value
    return _view(value, sizes, strides)


def _realize_as(ctx: LoweringContext, value: TensorValue, dtype: torch.dtype) -> Strided:
    """|value| in memory as |dtype| (converted into a new buffer if needed)."""
    if value.dtype != dtype:
        value = identity(value, dtype)
    return ctx.realize(value)


def _known_gt(a: Expr, b: Expr) -> bool:
    """True only when a > b is certain (static sizes)."""
    diff = sympy.sympify(a) - sympy.sympify(b)
    return bool(diff.is_number and diff > 0)


def _scalar_value(value: Any, dtype: torch.dtype, op: str) -> bool | int | float:
    """A Python scalar converted to |dtype| as eager converts it (Scalar to
    the tensor's element type: float to int truncates, bf16 rounds)."""
    if isinstance(value, sympy.Expr):
        if not value.is_number:
            raise NotImplementedError(f"{op}: a symbolic scalar value {value} is not supported")
        value = int(value) if value.is_integer else float(value)
    if not dtype.is_floating_point:
        return int(value)
    return float(torch.full((), float(value), dtype=dtype).item())


# -- scatter -------------------------------------------------------------------------


def scatter(
    ctx: LoweringContext,
    op: str,
    self: TensorValue,
    dim: int,
    index: TensorValue,
    src: TensorValue | None,
    value: Any = None,
    reduce: str = "none",
    include_self: bool = True,
    float_acc: bool = True,
) -> Buffer:
    """One "scatter" extern kernel: self with src (or the scalar |value|)
    scattered along |dim| at |index|, optionally reduced (REDUCTIONS)."""
    dtype = self.dtype
    _check_dtype(op, dtype)
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{op}: index must be int64 or int32, got {index.dtype}")
    if index.dtype != torch.int64:
        # The kernel reads int64 positions: widen int32 ones (a copy of the
        # index, small next to the scatter itself).
        index = identity(index, torch.int64)
    if reduce != "none" and reduce not in REDUCTIONS:
        raise ValueError(f"{op}: unknown reduction {reduce!r} (expected one of {REDUCTIONS})")
    shape = list(self.get_size())
    _check_rank(op, shape)
    ishape = list(index.get_size())
    if len(ishape) != len(shape) and not (len(ishape) <= 1 and len(shape) <= 1):
        raise ValueError(f"{op}: index must have the rank of self ({len(shape)}), got {ishape}")
    dim = normalize_dim(dim, len(shape))
    rself = _at_least_1d(ctx.realize(self))
    rindex = _at_least_1d(ctx.realize(index))
    inputs: list[Strided] = [rself, rindex]
    for d, (isz, ssz) in enumerate(zip(rindex.get_size(), rself.get_size(), strict=True)):
        if d != dim and _known_gt(isz, ssz):
            raise ValueError(f"{op}: index size {isz} exceeds self size {ssz} in dim {d}")
    params: dict[str, Any] = {
        "op": op,
        "dim": dim,
        "reduce": reduce,
        "include_self": bool(include_self),
        "float_acc": bool(float_acc),
        "value": None,
    }
    if src is None:
        params["value"] = _scalar_value(value, dtype, op)
    else:
        rsrc = _at_least_1d(_realize_as(ctx, src, dtype))
        if len(rsrc.get_size()) != len(rindex.get_size()):
            raise ValueError(f"{op}: src must have the rank of index, got {rsrc.get_size()}")
        for d, (isz, ssz) in enumerate(zip(rindex.get_size(), rsrc.get_size(), strict=True)):
            if _known_gt(isz, ssz):
                raise ValueError(f"{op}: index size {isz} exceeds src size {ssz} in dim {d}")
        inputs.append(rsrc)
    (out,) = ctx.extern("scatter", inputs, [(shape, dtype)], params)
    return out


def lower_scatter_src(
    ctx: LoweringContext, x: TensorValue, dim: int, index: TensorValue, src: TensorValue
) -> Buffer:
    return scatter(ctx, "scatter", x, dim, index, src)


def lower_scatter_value(
    ctx: LoweringContext, x: TensorValue, dim: int, index: TensorValue, value: Any
) -> Buffer:
    return scatter(ctx, "scatter", x, dim, index, None, value)


def _scatter_reduce_kind(reduce: str) -> str:
    kind = _SCATTER_REDUCE.get(reduce)
    if kind is None:
        raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
    return kind


def lower_scatter_src_reduce(
    ctx: LoweringContext,
    x: TensorValue,
    dim: int,
    index: TensorValue,
    src: TensorValue,
    *,
    reduce: str,
) -> Buffer:
    return scatter(ctx, "scatter", x, dim, index, src, reduce=_scatter_reduce_kind(reduce))


def lower_scatter_value_reduce(
    ctx: LoweringContext,
    x: TensorValue,
    dim: int,
    index: TensorValue,
    value: Any,
    *,
    reduce: str,
) -> Buffer:
    return scatter(ctx, "scatter", x, dim, index, None, value, reduce=_scatter_reduce_kind(reduce))


def lower_scatter_add(
    ctx: LoweringContext, x: TensorValue, dim: int, index: TensorValue, src: TensorValue
) -> Buffer:
    return scatter(ctx, "scatter_add", x, dim, index, src, reduce="sum")


def lower_scatter_reduce(
    ctx: LoweringContext,
    x: TensorValue,
    dim: int,
    index: TensorValue,
    src: TensorValue,
    reduce: str,
    *,
    include_self: bool = True,
) -> Buffer:
    return scatter(
        ctx, "scatter_reduce", x, dim, index, src, reduce=reduce, include_self=include_self
    )


def lower_index_reduce(
    ctx: LoweringContext,
    x: TensorValue,
    dim: int,
    index: TensorValue,
    source: TensorValue,
    reduce: str,
    *,
    include_self: bool = True,
) -> Buffer:
    """index_reduce: x[.., index[i], ..] (op)= source[.., i, ..] — a scatter
    whose index is the 1-D index broadcast over source (stride 0). Eager
    rounds bf16 after every step here, so float_acc is off."""
    op = "index_reduce"
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise ValueError(f"{op}: reduce must be prod, mean, amax or amin, got {reduce!r}")
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{op}: index must be int64 or int32, got {index.dtype}")
    shape = list(x.get_size())
    dim = normalize_dim(dim, len(shape))
    if len(index.get_size()) > 1:
        raise ValueError(f"{op}: index must be 0-d or 1-d")
    rsource = _at_least_1d(_realize_as(ctx, source, x.dtype))
    ssizes = list(rsource.get_size())
    rindex = _at_least_1d(_realize_as(ctx, index, torch.int64))
    _, ilayout = _strided(rindex)
    strides = [sympy.Integer(0)] * len(ssizes)
    strides[dim] = ilayout.strides[0]
    spread = _view(rindex, ssizes, strides)
    return scatter(
        ctx,
        op,
        x,
        dim,
        spread,
        rsource,
        reduce=reduce,
        include_self=include_self,
        float_acc=False,
    )


# -- index_put -----------------------------------------------------------------------


def index_put_kernel(
    ctx: LoweringContext,
    adv: Any,
    value: TensorValue,
    values: TensorValue,
    accumulate: bool,
    op: str = "index_put",
) -> Buffer:
    """One "index_put" extern kernel for value[indices] = values (+= with
    |accumulate|). |adv| is indexing._Advanced (the shape bookkeeping of
    value[indices]: dims, tensors, batch, lead, result)."""
    dtype = value.dtype
    _check_dtype(op, dtype)
    _check_rank(op, adv.shape)
    _check_rank(op, adv.batch)
    rself = ctx.realize(value)
    rvalues = _broadcast(_realize_as(ctx, values, dtype), adv.result)
    indices = [_broadcast(_realize_as(ctx, t, torch.int64), adv.batch) for t in adv.tensors]
    params = {
        "op": op,
        "accumulate": bool(accumulate),
        "index_dims": list(adv.dims),
        "lead": int(adv.lead),
        "batch_rank": len(adv.batch),
    }
    (out,) = ctx.extern("index_put", [rself, rvalues, *indices], [(list(adv.shape), dtype)], params)
    return out


class _Flat:
    """The index_put bookkeeping (indexing._Advanced's fields) of
    x.flatten()[index.flatten()]: one index tensor over dim 0, no other dims."""

    def __init__(self, numel: Expr, count: Expr, index: TensorValue) -> None:
        self.shape = [numel]
        self.dims = [0]
        self.tensors = [index]
        self.batch = [count]
        self.lead = 0
        self.result = [count]


def _flatten(ctx: LoweringContext, value: TensorValue) -> tuple[ReinterpretView, Expr]:
    buffer = ctx.realize_contiguous(value)
    numel = buffer.layout.numel()
    return _view(buffer, [numel], [1]), numel


def lower_put(
    ctx: LoweringContext,
    x: TensorValue,
    index: TensorValue,
    source: TensorValue,
    accumulate: bool = False,
) -> TensorValue:
    """put: x.flatten()[index.flatten()] = source.flatten() (+= with
    |accumulate|), as an index_put on flattened views."""
    op = "put"
    if index.dtype != torch.int64:
        raise TypeError(f"{op}: index must be int64, got {index.dtype}")
    flat_x, numel = _flatten(ctx, x)
    flat_i, count = _flatten(ctx, index)
    flat_s, scount = _flatten(ctx, _realize_as(ctx, source, x.dtype))
    if (count - scount).is_number and count != scount:
        raise ValueError(f"{op}: source has {scount} elements, index {count}")
    out = index_put_kernel(ctx, _Flat(numel, count, flat_i), flat_x, flat_s, accumulate, op)
    return ReinterpretView(out, Layout.contiguous(list(x.get_size())))
