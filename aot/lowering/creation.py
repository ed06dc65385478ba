"""Creation lowerings: arange, linspace, logspace, full, zeros, ones,
scalar_tensor, the *_like and new_* variants, and empty (which is zeros: aotc
is deterministic, so an uninitialised tensor reads as 0 rather than as
leftover workspace).

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
from .common import ValueOrScalar, compute_dtype, is_tensor, to_loader
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


# [Note: linspace numerics] linspace and logspace reach lowering whole (the
# frontend keeps them, aot/frontend/decompositions.py): their decompositions
# compute in float64 from the unrounded endpoints, eager's kernels do not.
# eager (RangeFactoriesKernel.cpp, RangeFactories.cpp) converts start and end
# to the result dtype first; linspace then computes in that dtype, so for
# bfloat16 every step rounds (end - start, steps - 1, the index, the product
# and the sum are each bfloat16), and for float32 start + step * i is one
# fused multiply-add (the kernel is built with FMA contraction; a float64
# multiply-add rounded once gives the same). logspace computes base^x in
# double with step = double(end - start) / (steps - 1), end - start taken in
# the result dtype. Both count the first half from start and the second half
# back from end.


def _spaced(
    start: ValueOrScalar, end: ValueOrScalar, steps: int, dtype: torch.dtype, body: Any
) -> Pointwise:
    """A [steps] Pointwise of body(ops, start, end, i, k) with start and end
    converted to |dtype| (as eager's Scalar::to) and held in its compute
    dtype, i the index and k = steps - 1 - i (float64 index values)."""
    if steps < 0:
        raise ValueError("linspace/logspace: number of steps must be non-negative")
    cdt = compute_dtype(dtype)
    ends = [_endpoint(v, dtype) for v in (start, end)]

    def inner(ops: Any, index: Index) -> Any:
        lo, hi = (load(ops, []) for load in ends)
        f64 = torch.float64
        i = ops.index_expr(index[0], f64)
        k = ops.index_expr(steps - 1 - index[0], f64)
        return _finish(ops, body(ops, lo, hi, i, k), cdt, dtype)

    return Pointwise([sympy.Integer(steps)], dtype, inner)


def _exact(value: ValueOrScalar) -> Any:
    """A loader of |value| as given: float64 for floats, int64 for integers."""
    dtype = value.dtype if is_tensor(value) else torch.float64  # type: ignore[union-attr]
    return to_loader(value, torch.float64 if dtype.is_floating_point else torch.int64)


def _endpoint(value: ValueOrScalar, dtype: torch.dtype) -> Any:
    """A loader of |value| rounded to |dtype|, in its compute dtype."""
    if not dtype.is_floating_point and isinstance(value, float):
        value = int(value)  # Scalar::to<int64_t> truncates
    load, cdt = _exact(value), compute_dtype(dtype)

    def rounded(ops: Any, index: Index) -> Any:
        return ops.to_dtype(ops.to_dtype(load(ops, index), dtype), cdt)

    return rounded


def _round_to(ops: Any, value: Any, dtype: torch.dtype) -> Any:
    """|value| (float32) rounded to bfloat16/float16 and back."""
    return ops.to_dtype(ops.to_dtype(value, dtype), torch.float32)


def linspace(
    start: ValueOrScalar, end: ValueOrScalar, steps: int, dtype: torch.dtype | None = None
) -> Pointwise:
    """torch.linspace with eager's arithmetic ([Note: linspace numerics])."""
    dtype = dtype or torch.get_default_dtype()
    cdt, f64, half = compute_dtype(dtype), torch.float64, steps // 2

    def body(ops: Any, lo: Any, hi: Any, i: Any, k: Any) -> Any:
        if steps == 1:
            return lo
        first = ops.lt(i, ops.constant(float(half), f64))
        if dtype in (torch.bfloat16, torch.float16):
            r = lambda v: _round_to(ops, v, dtype)  # noqa: E731
            count = r(ops.constant(float(steps - 1), torch.float32))
            step = r(ops.truediv(r(ops.sub(hi, lo)), count))
            i, k = r(ops.to_dtype(i, torch.float32)), r(ops.to_dtype(k, torch.float32))
            up = r(ops.add(lo, r(ops.mul(step, i))))
            down = r(ops.sub(hi, r(ops.mul(step, k))))
            return ops.where(first, up, down)
        # float32: eager's fused start + step * i, a float64 multiply-add
        # rounded once; float64 the same unfused; integers: a float64 step.
        to64 = lambda v: ops.to_dtype(v, f64)  # noqa: E731
        if cdt.is_floating_point:
            count = ops.constant(float(steps - 1), cdt)
            step = to64(ops.truediv(ops.sub(hi, lo), count))
        else:
            count = ops.constant(float(steps - 1), f64)
            step = ops.truediv(ops.sub(to64(hi), to64(lo)), count)
        up = ops.add(to64(lo), ops.mul(step, i))
        down = ops.sub(to64(hi), ops.mul(step, k))
        return ops.to_dtype(ops.where(first, up, down), cdt)

    return _spaced(start, end, steps, dtype, body)


def logspace(
    start: ValueOrScalar,
    end: ValueOrScalar,
    steps: int,
    base: float = 10.0,
    dtype: torch.dtype | None = None,
) -> Pointwise:
    """torch.logspace with eager's arithmetic ([Note: linspace numerics])."""
    dtype = dtype or torch.get_default_dtype()
    cdt, f64, half = compute_dtype(dtype), torch.float64, steps // 2

    def body(ops: Any, lo: Any, hi: Any, i: Any, k: Any) -> Any:
        b = ops.constant(float(base), f64)
        if steps == 1:  # eager: base ** start, start unrounded
            return ops.to_dtype(ops.pow(b, ops.to_dtype(_exact(start)(ops, []), f64)), cdt)
        diff = ops.sub(hi, lo)
        if dtype in (torch.bfloat16, torch.float16):
            diff = _round_to(ops, diff, dtype)
        step = ops.truediv(ops.to_dtype(diff, f64), ops.constant(float(steps - 1), f64))
        wide_lo, wide_hi = ops.to_dtype(lo, f64), ops.to_dtype(hi, f64)
        up = ops.add(wide_lo, ops.mul(step, i))
        down = ops.sub(wide_hi, ops.mul(step, k))
        x = ops.where(ops.lt(i, ops.constant(float(half), f64)), up, down)
        return ops.to_dtype(ops.pow(b, x), cdt)

    return _spaced(start, end, steps, dtype, body)


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
    reg(
        aten.linspace.default,
        aten.linspace.Tensor_Tensor,
        aten.linspace.Tensor_Scalar,
        aten.linspace.Scalar_Tensor,
    )(lambda ctx, start, end, steps, *, dtype=None, **kw: linspace(start, end, steps, dtype))
    reg(
        aten.logspace.default,
        aten.logspace.Tensor_Tensor,
        aten.logspace.Tensor_Scalar,
        aten.logspace.Scalar_Tensor,
    )(
        lambda ctx, start, end, steps, base=10.0, *, dtype=None, **kw: logspace(
            start, end, steps, base, dtype
        )
    )
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
