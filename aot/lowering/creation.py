"""Creation lowerings: arange, full, zeros, ones, scalar_tensor, the *_like
and new_* variants, and empty (which is zeros: aotc is deterministic, so an
uninitialised tensor reads as 0 rather than as leftover workspace).

Every result is an unrealized Pointwise of ops.constant or ops.index_expr,
inlined into its readers. Device, layout and pin_memory arguments are
ignored: the frontend retargets devices, and lowering has one address space
per kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Pointwise
from ..ir.symbols import FloorDiv
from .common import compute_dtype
from .registry import LoweringRegistry
from .views import Expr, Index, cast_scalar, sym, sym_list

aten = torch.ops.aten


def _default_dtype(value: Any) -> torch.dtype:
    """The dtype torch.full infers from a Python fill value."""
    if isinstance(value, bool) or (isinstance(value, sympy.Basic) and value.is_Boolean):
        return torch.bool
    if isinstance(value, int) or (isinstance(value, sympy.Basic) and value.is_integer):
        return torch.int64
    return torch.get_default_dtype()


def full(size: Sequence[Any], fill: Any, dtype: torch.dtype | None = None) -> Pointwise:
    """A Pointwise of |fill| (a Python number or a symbolic int) of |size|.
    bf16/fp16 constants are float32 constants rounded once (ops.py)."""
    dtype = dtype or _default_dtype(fill)
    cdt = compute_dtype(dtype)
    if isinstance(fill, sympy.Basic) and not fill.is_Number and not fill.is_Boolean:
        expr = fill

        def symbolic(ops: Any, index: Index) -> Any:
            return _finish(ops, ops.index_expr(expr, cdt), cdt, dtype)

        return Pointwise(sym_list(size), dtype, symbolic)
    number = fill if not isinstance(fill, sympy.Basic) else _number(fill)
    value = cast_scalar(torch.tensor(number).to(dtype).item(), cdt)

    def inner(ops: Any, index: Index) -> Any:
        return _finish(ops, ops.constant(value, cdt), cdt, dtype)

    return Pointwise(sym_list(size), dtype, inner)


def _finish(ops: Any, value: Any, cdt: torch.dtype, dtype: torch.dtype) -> Any:
    return value if cdt == dtype else ops.to_dtype(value, dtype)


def _number(value: sympy.Basic) -> int | float | bool:
    if value.is_Boolean:
        return bool(value)
    return int(value) if value.is_Integer else float(value)


def arange(start: Any, end: Any, step: Any = 1, dtype: torch.dtype | None = None) -> Pointwise:
    args = [start, end, step]
    is_int = all(isinstance(a, int) or (isinstance(a, sympy.Basic) and a.is_integer) for a in args)
    dtype = dtype or (torch.int64 if is_int else torch.get_default_dtype())
    if is_int:
        lo, hi, st = sym(start), sym(end), sym(step)
        if st == 0:
            raise ValueError("arange step must be nonzero")
        if lo.is_Integer and hi.is_Integer and st.is_Integer:
            length: Expr = sympy.Integer(max(0, -((int(lo) - int(hi)) // int(st))))
        elif st == 1:
            length = hi - lo
        elif st.is_Integer and int(st) > 0:
            length = FloorDiv(hi - lo + st - 1, st)
        else:
            raise ValueError(f"arange({start}, {end}, {step}) with a dynamic negative step")

        cdt = compute_dtype(dtype)

        def inner(ops: Any, index: Index) -> Any:
            return _finish(ops, ops.index_expr(lo + st * index[0], cdt), cdt, dtype)

        return Pointwise([length], dtype, inner)
    fstart, fend, fstep = (float(_number(a) if isinstance(a, sympy.Basic) else a) for a in args)
    if fstep == 0:
        raise ValueError("arange step must be nonzero")
    count = max(0, math.ceil((fend - fstart) / fstep))

    def inner_float(ops: Any, index: Index) -> Any:
        # Eager computes start + step * i in double, then rounds once.
        f64 = torch.float64
        i = ops.index_expr(index[0], f64)
        value = ops.add(ops.constant(fstart, f64), ops.mul(ops.constant(fstep, f64), i))
        return value if dtype == f64 else ops.to_dtype(value, dtype)

    return Pointwise([sympy.Integer(count)], dtype, inner_float)


def register(registry: LoweringRegistry) -> None:
    reg = registry.register

    reg(aten.arange.start_step)(
        lambda ctx, start, end, step=1, *, dtype=None, **kw: arange(start, end, step, dtype)
    )
    reg(aten.arange.start)(
        lambda ctx, start, end, *, dtype=None, **kw: arange(start, end, 1, dtype)
    )
    reg(aten.arange.default)(lambda ctx, end, *, dtype=None, **kw: arange(0, end, 1, dtype))
    reg(aten.full.default)(lambda ctx, size, fill, *, dtype=None, **kw: full(size, fill, dtype))
    reg(aten.zeros.default)(
        lambda ctx, size, *, dtype=None, **kw: full(size, 0, dtype or torch.get_default_dtype())
    )
    reg(aten.ones.default)(
        lambda ctx, size, *, dtype=None, **kw: full(size, 1, dtype or torch.get_default_dtype())
    )
    reg(aten.empty.memory_format)(
        lambda ctx, size, *, dtype=None, **kw: full(size, 0, dtype or torch.get_default_dtype())
    )
    reg(aten.empty_strided.default)(
        lambda ctx, size, stride, *, dtype=None, **kw: full(
            size, 0, dtype or torch.get_default_dtype()
        )
    )
    reg(aten.scalar_tensor.default)(
        lambda ctx, s, *, dtype=None, **kw: full([], s, dtype or torch.get_default_dtype())
    )
    reg(aten.full_like.default)(
        lambda ctx, x, fill, *, dtype=None, **kw: full(x.get_size(), fill, dtype or x.dtype)
    )
    for op, value in ((aten.zeros_like, 0), (aten.ones_like, 1), (aten.empty_like, 0)):
        reg(op.default)(
            lambda ctx, x, *, dtype=None, _v=value, **kw: full(x.get_size(), _v, dtype or x.dtype)
        )
    for op, value in ((aten.new_zeros, 0), (aten.new_ones, 1), (aten.new_empty, 0)):
        reg(op.default)(
            lambda ctx, x, size, *, dtype=None, _v=value, **kw: full(size, _v, dtype or x.dtype)
        )
    reg(aten.new_full.default)(
        lambda ctx, x, size, fill, *, dtype=None, **kw: full(size, fill, dtype or x.dtype)
    )
    reg(aten.new_empty_strided.default)(
        lambda ctx, x, size, stride, *, dtype=None, **kw: full(size, 0, dtype or x.dtype)
    )
