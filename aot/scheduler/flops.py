"""How many floating-point operations a kernel performs, at compile time.

[Note: FLOP counting] FLOPs count the arithmetic the graph asks for, once:
- a loop kernel: every floating-point arithmetic op of a node's body (add,
  mul, exp, maximum, math_fn ...: FLOATING_OPS) counts one per element the
  node computes; loads, constants, index math, casts, selects (where,
  masked), comparisons and integer or bitwise ops count nothing. A
  reduction's combine counts one per reduced element (REDUCTION_COMBINE_FLOPS:
  Welford's update counts six, once for its two outputs; any/all on
  booleans nothing). Masked bodies count as if always evaluated. Bodies are
  counted as lowered: a pointwise value inlined into two nodes counts in
  both (the kernel does compute it twice), while a local node that codegen
  recomputes in a second loop of its kernel counts once;
- GEMM and convolution count 2 per multiply-add (torch.utils.flop_counter's
  convention) plus one per output element for a bias; attention counts its
  two matrix products; pooling one per window element per output, a scan
  one per element; sort, top-k, selection and scatter count nothing (data
  movement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy
import torch

from ..ir.nodes import Buffer, ExternKernel, Reduction, ReinterpretView, WelfordReduction
from ..ir.ops import OP_NAMES
from ..ir.symbols import product
from .fusion import loop_args
from .schedule import ExternCall, LoopKernel


@dataclass(frozen=True)
class Value:
    """What the counter knows of a value: whether it is a float."""

    is_float: bool


# Ops that count one FLOP when their result is a float.
FLOATING_OPS = frozenset(
    {
        *("neg", "abs", "exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "reciprocal"),
        *("sin", "cos", "tan", "tanh", "sigmoid", "erf", "floor", "ceil", "trunc", "round"),
        *("sign", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "atan2"),
        *("maximum", "minimum", "math_fn"),
    }
)
# Ops whose result is a bool or an integer: never FLOPs.
PREDICATE_OPS = frozenset(
    {
        *("isnan", "isinf", "eq", "ne", "lt", "le", "gt", "ge"),
        *("logical_not", "logical_and", "logical_or", "logical_xor"),
        *("bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor"),
    }
)
_SPECIAL = frozenset(
    {"load", "constant", "index_expr", "indirect_indexing", "to_dtype", "where", "masked"}
)
if FLOATING_OPS | PREDICATE_OPS | _SPECIAL != set(OP_NAMES):  # a new op must be classified
    raise AssertionError(
        f"flops.py does not classify {sorted(set(OP_NAMES) - FLOATING_OPS - PREDICATE_OPS)}"
    )

REDUCTION_COMBINE_FLOPS = {
    "sum": 1,
    "prod": 1,
    "max": 1,
    "min": 1,
    "argmax": 1,
    "argmin": 1,
    "any": 0,
    "all": 0,
    "welford": 6,
}


class FlopCounter:
    """An ops handler counting the floating-point ops of one evaluation of a body."""

    def __init__(self, dtypes: Mapping[str, torch.dtype]) -> None:
        self.dtypes = dtypes
        self.count = 0
        self._indirect = 0

    def load(self, name: str, index: sympy.Expr) -> Value:
        return Value(self.dtypes[name].is_floating_point)

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> Value:
        return Value(dtype.is_floating_point)

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> Value:
        return Value(dtype.is_floating_point)

    def indirect_indexing(
        self, value: Value, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        self._indirect += 1
        return sympy.Symbol(f"indirect{self._indirect}", integer=True, nonnegative=True)

    def to_dtype(self, value: Value, dtype: torch.dtype) -> Value:
        return Value(dtype.is_floating_point)

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        return Value(a.is_float or b.is_float)

    def masked(self, mask: Value, body: Callable[[], Value], other: float | int | bool) -> Value:
        return body()


def _floating(name: str) -> Callable[..., Value]:
    def op(self: FlopCounter, *args: object) -> Value:
        is_float = any(isinstance(a, Value) and a.is_float for a in args)
        self.count += int(is_float)
        return Value(is_float)

    op.__name__ = name
    return op


def _predicate(self: FlopCounter, *args: object) -> Value:
    return Value(False)


for _name in FLOATING_OPS:
    setattr(FlopCounter, _name, _floating(_name))
for _name in PREDICATE_OPS:
    setattr(FlopCounter, _name, _predicate)


def loop_flops(kernel: LoopKernel, buffers: Mapping[str, Buffer]) -> sympy.Expr:
    """The FLOPs of |kernel| per [Note: FLOP counting]."""
    dtypes = {name: buf.dtype for name, buf in buffers.items()}
    total = sympy.Integer(0)
    for node in kernel.nodes:
        data = node.data
        counter = FlopCounter(dtypes)
        index, rindex = loop_args(kernel, node)
        if isinstance(data, Reduction):
            if isinstance(data, WelfordReduction) and data.output_index != 0:
                continue  # one Welford pass computes both outputs
            data.inner_fn(counter, index, rindex)
            per_element = counter.count + REDUCTION_COMBINE_FLOPS[data.reduction_type]
            total += per_element * product(list(data.ranges)) * product(list(data.reduction_ranges))
        else:
            data.inner_fn(counter, index)
            total += counter.count * product(list(data.ranges))
    return sympy.sympify(total)


def _sizes(value: Buffer | ReinterpretView) -> list[sympy.Expr]:
    return list(value.layout.sizes)


def extern_flops(call: ExternCall) -> sympy.Expr:
    """The FLOPs of an extern kernel per [Note: FLOP counting]."""
    node = call.node
    count = _EXTERN_FLOPS.get(node.kind)
    return sympy.sympify(count(node)) if count is not None else sympy.Integer(0)


def _out_numel(node: ExternKernel) -> sympy.Expr:
    return product(list(node.outputs[0].layout.sizes))


def _gemm(node: ExternKernel) -> sympy.Expr:
    # inputs: a [.., M, K], b [.., K, N] and, for addmm with beta != 0, the bias.
    flops = 2 * _out_numel(node) * _sizes(node.inputs[0])[-1]
    return flops + (_out_numel(node) if len(node.inputs) > 2 else 0)


def _convolution(node: ExternKernel) -> sympy.Expr:
    x, w = node.inputs[0], node.inputs[1]
    # w is [Cout, Cin/groups, k..] ([Cin, Cout/groups, k..] when transposed).
    kernel_numel = product(_sizes(w)[2:])
    if node.params.get("transposed", False):
        # Every input element scatters into Cout/groups x kernel outputs.
        macs = product(_sizes(x)) * (_sizes(w)[1]) * kernel_numel
    else:
        macs = _out_numel(node) * (_sizes(w)[1]) * kernel_numel
    bias = _out_numel(node) if len(node.inputs) > 2 else 0
    return 2 * macs + bias


def _sdpa(node: ExternKernel) -> sympy.Expr:
    q, k, v = node.inputs[0], node.inputs[1], node.inputs[2]
    batch = product(_sizes(q)[:-2])
    length, embed = _sizes(q)[-2], _sizes(q)[-1]
    source, value_embed = _sizes(k)[-2], _sizes(v)[-1]
    return 2 * batch * length * source * (embed + value_embed)


def _pool(node: ExternKernel) -> sympy.Expr:
    window = node.params.get("kernel_size")
    if window is None:  # adaptive: each output reads about input/output elements
        return product(_sizes(node.inputs[0]))
    return _out_numel(node) * product([sympy.sympify(s) for s in window])


def _scan(node: ExternKernel) -> sympy.Expr:
    return product(_sizes(node.inputs[0]))


_EXTERN_FLOPS: dict[str, Callable[[ExternKernel], sympy.Expr]] = {
    "mm": _gemm,
    "addmm": _gemm,
    "bmm": _gemm,
    "convolution": _convolution,
    "sdpa": _sdpa,
    "max_pool": _pool,
    "avg_pool": _pool,
    "adaptive_avg_pool": _pool,
    "adaptive_max_pool": _pool,
    "cumsum": _scan,
    "cumprod": _scan,
    "logcumsumexp": _scan,
    "cummax": _scan,
    "cummin": _scan,
}
