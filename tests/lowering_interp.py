"""A numeric interpreter of aotc loop bodies, for lowering tests.

Interpreter is an ops handler that evaluates a body at every index at once
(each loop variable is a broadcast arange) on torch tensors, so bf16 rounding
is exact, and checks the ops.py contract as it goes: operands of one dtype,
no arithmetic on bf16/fp16 (computed in float32), float ops on floats,
logical ops on bools, loads and indirect indices in bounds where not masked,
integer x // 0 and x % 0 giving 0. Reductions are evaluated by looping over
their reduction_ranges one point at a time. run_lowering() lowers one aten op
with torch tensors as INPUT buffers (strided ones as ReinterpretViews) and
runs every node the lowering recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
import torch

from aot.ir.nodes import (
    Buffer,
    BufferKind,
    ComputedBuffer,
    Layout,
    Reduction,
    ReinterpretView,
    WelfordReduction,
)
from aot.ir.symbols import FloorDiv, ModularIndexing, index_vars, reduction_vars
from aot.lowering.context import LoweringContext
from aot.lowering.registry import LoweringRegistry

HALF = (torch.bfloat16, torch.float16)


# -- the interpreter --------------------------------------------------------------


class Interpreter:
    """Vectorised numeric ops handler over torch tensors."""

    def __init__(self, buffers: dict[str, torch.Tensor]) -> None:
        self.buffers = buffers  # name -> flat storage
        self.env: dict[sympy.Symbol, torch.Tensor] = {}
        self.masks: list[torch.Tensor] = []
        self.indirect = 0

    # -- index expressions
    def eval_index(self, expr: Any) -> Any:
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return int(expr)
        if expr.is_Symbol:
            return self.env[expr]
        args = [self.eval_index(a) for a in expr.args]
        if expr.is_Add:
            return sum(args[1:], args[0])
        if expr.is_Mul:
            return math.prod(args[1:], start=args[0])
        if isinstance(expr, FloorDiv):
            return args[0] // args[1]
        if isinstance(expr, ModularIndexing):
            return (args[0] // args[1]) % args[2]
        if isinstance(expr, sympy.Max | sympy.Min):
            fn = torch.maximum if isinstance(expr, sympy.Max) else torch.minimum
            out = torch.as_tensor(args[0])
            for a in args[1:]:
                out = fn(out, torch.as_tensor(a))
            return out
        raise NotImplementedError(f"index expression {expr}")

    def _in_bounds(self, idx: torch.Tensor, size: int, what: str) -> None:
        bad = (idx < 0) | (idx >= size)
        for mask in self.masks:
            bad = bad & mask
        assert not bool(bad.any()), f"{what}: index out of bounds"

    # -- memory, constants, conversion
    def load(self, name: str, index: sympy.Expr) -> torch.Tensor:
        flat = self.buffers[name]
        idx = torch.as_tensor(self.eval_index(index), dtype=torch.int64)
        self._in_bounds(idx, flat.numel(), f"load {name}[{index}]")
        if flat.numel() == 0:
            return torch.zeros(idx.shape, dtype=flat.dtype)
        return flat[idx.clamp(0, flat.numel() - 1)]

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> torch.Tensor:
        assert dtype not in HALF, "constants of bf16/fp16 (compute in float32)"
        return torch.tensor(value, dtype=dtype)

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(self.eval_index(expr)).to(dtype)

    def indirect_indexing(
        self, value: torch.Tensor, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        v = value.to(torch.int64)
        if wrap:
            v = torch.where(v < 0, v + int(size), v)
        self._in_bounds(v, int(size), f"indirect {name}")
        symbol = sympy.Symbol(f"ind{self.indirect}", integer=True, nonnegative=True)
        self.indirect += 1
        self.env[symbol] = v
        return symbol

    def to_dtype(self, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return value.to(dtype)

    def where(self, cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert cond.dtype == torch.bool
        self.check_operands("any", a, b)
        return torch.where(cond, a, b)

    def masked(self, mask: torch.Tensor, body: Callable[[], Any], other: Any) -> torch.Tensor:
        self.masks.append(mask)
        try:
            value = body()
        finally:
            self.masks.pop()
        return torch.where(mask, value, torch.tensor(other, dtype=value.dtype))

    # -- contract checks
    @staticmethod
    def check_operands(kind: str, *values: torch.Tensor) -> None:
        """One dtype for all operands, never bf16/fp16 (computed in float32);
        |kind| "float" and "bool" ops need float and bool operands."""
        dtypes = {v.dtype for v in values}
        assert len(dtypes) == 1, f"operands of different dtypes: {dtypes}"
        assert not dtypes & set(HALF), "arithmetic on bf16/fp16 (must be float32)"
        if kind == "float":
            assert values[0].dtype.is_floating_point, f"float op on {values[0].dtype}"
        elif kind == "bool":
            assert values[0].dtype == torch.bool, f"logical op on {values[0].dtype}"

    def _int_safe(self, fn: Callable[..., torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> Any:
        self.check_operands("any", a, b)
        if a.dtype.is_floating_point:
            return fn(a, b)
        zero = b == 0
        return torch.where(zero, torch.zeros((), dtype=a.dtype), fn(a, torch.where(zero, 1, b)))

    def floordiv(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Integer division by zero gives 0 (ops.py's contract)."""
        return self._int_safe(lambda x, y: torch.div(x, y, rounding_mode="floor"), a, b)

    def mod(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self._int_safe(torch.remainder, a, b)

    # -- loops
    def _bind(self, sizes: Sequence[sympy.Expr], symbols: Sequence[sympy.Symbol]) -> list[int]:
        shape = [int(s) for s in sizes]
        for axis, symbol in enumerate(symbols):
            view = [1] * len(shape)
            view[axis] = shape[axis]
            self.env[symbol] = torch.arange(shape[axis]).view(view)
        return shape

    def pointwise(
        self, sizes: Sequence[sympy.Expr], loader: Any, dtype: torch.dtype
    ) -> torch.Tensor:
        symbols = index_vars(len(sizes), "p")
        shape = self._bind(sizes, symbols)
        value = torch.as_tensor(loader(self, symbols))
        assert value.dtype == dtype, f"body gives {value.dtype}, node says {dtype}"
        return value.expand(shape).clone()

    def reduction(self, node: Reduction) -> torch.Tensor:
        """Loops over reduction_ranges, combining one slice at a time."""
        index, rindex = (
            index_vars(len(node.ranges), "p"),
            reduction_vars(len(node.reduction_ranges)),
        )
        shape = self._bind(node.ranges, index)
        rshape = [int(s) for s in node.reduction_ranges]
        acc: torch.Tensor | None = None
        best: torch.Tensor | None = None
        kind = node.reduction_type
        if kind == "welford":  # (mean, m2, weight), Welford's update per point
            assert isinstance(node, WelfordReduction) and node.dtype == node.src_dtype
            moments = [torch.zeros(shape, dtype=node.src_dtype) for _ in range(3)]
        for flat, point in enumerate(np.ndindex(*rshape)):
            for symbol, value in zip(rindex, point, strict=True):
                self.env[symbol] = torch.tensor(value)
            v = torch.as_tensor(node.inner_fn(self, index, rindex)).expand(shape)
            assert v.dtype == node.src_dtype, f"reduction body {v.dtype} != {node.src_dtype}"
            if kind == "welford":
                mean, m2, weight = moments
                weight = weight + 1
                delta = v - mean
                mean = mean + delta / weight
                moments = [mean, m2 + delta * (v - mean), weight]
                continue
            if acc is None:
                acc, best = v.clone(), torch.zeros(shape, dtype=torch.int64)
                continue
            if kind in ("argmax", "argmin"):
                better = v > acc if kind == "argmax" else v < acc
                better = (better | v.isnan()) & ~acc.isnan() if v.is_floating_point() else better
                acc, best = torch.where(better, v, acc), torch.where(better, flat, best)
            else:
                combine = {
                    "sum": torch.add,
                    "prod": torch.mul,
                    "max": torch.maximum,
                    "min": torch.minimum,
                    "any": torch.logical_or,
                    "all": torch.logical_and,
                }[kind]
                acc = combine(acc, v)
        if kind == "welford":
            mean, m2, weight = moments
            empty = torch.full_like(mean, float("nan"))
            return torch.where(weight > 0, mean, empty) if node.output_index == 0 else m2
        assert acc is not None and best is not None
        result = best if node.reduction_type in ("argmax", "argmin") else acc
        return result.to(node.dtype)


# The remaining ops map onto torch functions: name -> (function, operand kind).
_TORCH_OPS: dict[str, tuple[Callable[..., torch.Tensor], str]] = {
    "neg": (torch.neg, "any"),
    "abs": (torch.abs, "any"),
    "sign": (torch.sign, "any"),
    "bitwise_not": (torch.bitwise_not, "any"),
    **{
        name: (getattr(torch, name), "float")
        for name in (
            "exp",
            "expm1",
            "log",
            "log1p",
            "sqrt",
            "rsqrt",
            "reciprocal",
            "sin",
            "cos",
            "tan",
            "tanh",
            "sigmoid",
            "erf",
            "floor",
            "ceil",
            "trunc",
            "round",
            "isnan",
            "isinf",
            "atan2",
        )
    },  # fmt: skip
    "logical_not": (torch.logical_not, "bool"),
    "add": (torch.add, "any"),
    "sub": (torch.sub, "any"),
    "mul": (torch.mul, "any"),
    "truediv": (torch.div, "float"),
    "pow": (torch.pow, "any"),
    **{
        name: (getattr(torch, name), "any")
        for name in (
            "maximum",
            "minimum",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "bitwise_and",
            "bitwise_or",
            "bitwise_xor",
        )
    },  # fmt: skip
    **{
        name: (getattr(torch, name), "bool")
        for name in ("logical_and", "logical_or", "logical_xor")
    },
}


def _math_fn(name: str) -> Callable[..., torch.Tensor]:
    """The torch function of a math_fn name (aot/ir/ops.py's MATH_FUNCTIONS)."""
    if name == "frexp_mantissa":
        return lambda x: torch.frexp(x).mantissa
    if name == "frexp_exponent":
        return lambda x: torch.frexp(x).exponent.to(x.dtype)
    if name == "nextafter_bf16":
        return lambda x, y: torch.nextafter(x.bfloat16(), y.bfloat16()).to(x.dtype)
    if name == "polygamma":
        return lambda n, x: torch.polygamma(int(n.flatten()[0]), x)
    if name in ("asin", "acos", "asinh", "acosh", "atanh", "copysign", "hypot", "nextafter"):
        return getattr(torch, name)
    if name in ("lgamma", "digamma", "igamma", "igammac", "erfinv"):
        return getattr(torch, name)
    return getattr(torch.special, name)


def _math_op(self: Interpreter, name: str, *values: torch.Tensor) -> torch.Tensor:
    self.check_operands("float", *values)
    return _math_fn(name)(*values)


Interpreter.math_fn = _math_op  # type: ignore[attr-defined]


def _torch_op(fn: Callable[..., torch.Tensor], kind: str) -> Callable[..., torch.Tensor]:
    def op(self: Interpreter, *values: torch.Tensor) -> torch.Tensor:
        self.check_operands(kind, *values)
        return fn(*values)

    return op


for _name, (_fn, _kind) in _TORCH_OPS.items():
    setattr(Interpreter, _name, _torch_op(_fn, _kind))


# -- running lowerings -------------------------------------------------------------


def as_value(t: torch.Tensor, name: str, buffers: dict[str, torch.Tensor]) -> Any:
    """An INPUT buffer holding |t|'s storage; a ReinterpretView when |t| is strided."""
    sizes = [sympy.Integer(s) for s in t.shape]
    if t.is_contiguous():
        buffers[name] = t.reshape(-1).clone()
        return Buffer(name, t.dtype, Layout.contiguous(sizes), BufferKind.INPUT)
    storage = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage())
    buffers[name] = storage.clone()
    base = Buffer(
        name, t.dtype, Layout.contiguous([sympy.Integer(storage.numel())]), BufferKind.INPUT
    )
    strides = tuple(sympy.Integer(s) for s in t.stride())
    return ReinterpretView(base, Layout(tuple(sizes), strides, sympy.Integer(t.storage_offset())))


def run_lowering(
    registry: LoweringRegistry, target: Any, *args: Any, **kwargs: Any
) -> tuple[Any, LoweringContext, Interpreter]:
    """Lowers |target| on |args| (tensors become INPUT buffers) and runs the
    nodes it recorded; returns (result value, context, interpreter holding
    every buffer)."""
    buffers: dict[str, torch.Tensor] = {}
    values = [
        as_value(a, f"in{k}", buffers) if isinstance(a, torch.Tensor) else a
        for k, a in enumerate(args)
    ]
    kwvalues = {
        k: as_value(v, f"kw_{k}", buffers) if isinstance(v, torch.Tensor) else v
        for k, v in kwargs.items()
    }
    ctx = LoweringContext()
    out = registry.get(target)(ctx, *values, **kwvalues)
    interp = Interpreter(buffers)
    for node in ctx.nodes:
        assert isinstance(node, ComputedBuffer)
        if isinstance(node.data, Reduction):
            result = interp.reduction(node.data)
        else:
            result = interp.pointwise(node.data.ranges, node.data.inner_fn, node.data.dtype)
        assert result.dtype == node.dtype
        buffers[node.name] = result.reshape(-1)
    return out, ctx, interp


def materialize(interp: Interpreter, value: Any) -> torch.Tensor:
    """Every element of |value| (a TensorValue)."""
    return interp.pointwise(value.get_size(), value.make_loader(), value.dtype)
