"""Which buffers a loop body reads, and how many bytes a kernel moves.

[Note: bytes counting] A LoopKernel's traffic is counted the way PyTorch's
test_perf counts it (``count_numel``): every distinct buffer the kernel reads
from memory counts its full size once, whatever the index pattern (a
broadcast read, a slice or a gather still counts the buffer's numel), and
every buffer the kernel materialises counts its full size once. Buffers in
the kernel's ``local`` set never touch memory, and a read of a buffer written
earlier in the same kernel is aligned by construction (fusion.py), so it
reads what the kernel just wrote and is not counted either.

An extern kernel reads each distinct input buffer once and writes its
outputs. One that runs in place (a scatter or index_put into the mutated
input's own memory, [Note: in-place mutations]) neither reads nor rewrites
its self operand: it writes the indexed elements only (and, when it
accumulates, reads them), as many as its index (scatter) or its broadcast
values (index_put) hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import sympy
import torch

from ..ir.nodes import Buffer, ComputedBuffer, Pointwise, Reduction, ReinterpretView
from ..ir.symbols import index_vars, product, reduction_vars
from .schedule import ExternCall, LoopKernel


class Token:
    """The value every recorded op returns: the recorder never computes."""

    __slots__ = ()


_TOKEN = Token()


@dataclass(frozen=True)
class Load:
    name: str
    index: sympy.Expr


class LoadRecorder:
    """An ops handler that records every ``load(name, index)`` of a body.

    Ops return a dummy token; ``indirect_indexing`` returns a fresh symbol (so
    an indirect load never equals any affine index); ``masked`` runs its body
    so loads under a mask are recorded too. Every op of the OpsHandler
    protocol is written out: an op missing here fails loudly."""

    def __init__(self) -> None:
        self.loads: list[Load] = []
        self._indirect = 0

    # -- memory and constants ------------------------------------------------
    def load(self, name: str, index: sympy.Expr) -> Token:
        self.loads.append(Load(name, sympy.sympify(index)))
        return _TOKEN

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> Token:
        return _TOKEN

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> Token:
        return _TOKEN

    def indirect_indexing(
        self, value: Token, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        symbol = sympy.Symbol(f"indirect{self._indirect}", integer=True, nonnegative=True)
        self._indirect += 1
        return symbol

    def to_dtype(self, value: Token, dtype: torch.dtype) -> Token:
        return _TOKEN

    def where(self, cond: Token, a: Token, b: Token) -> Token:
        return _TOKEN

    def masked(self, mask: Token, body: Callable[[], Token], other: float | int | bool) -> Token:
        body()
        return _TOKEN

    # -- unary math ------------------------------------------------------------
    def neg(self, x: Token) -> Token:
        return _TOKEN

    def abs(self, x: Token) -> Token:
        return _TOKEN

    def exp(self, x: Token) -> Token:
        return _TOKEN

    def expm1(self, x: Token) -> Token:
        return _TOKEN

    def log(self, x: Token) -> Token:
        return _TOKEN

    def log1p(self, x: Token) -> Token:
        return _TOKEN

    def sqrt(self, x: Token) -> Token:
        return _TOKEN

    def rsqrt(self, x: Token) -> Token:
        return _TOKEN

    def reciprocal(self, x: Token) -> Token:
        return _TOKEN

    def sin(self, x: Token) -> Token:
        return _TOKEN

    def cos(self, x: Token) -> Token:
        return _TOKEN

    def tan(self, x: Token) -> Token:
        return _TOKEN

    def tanh(self, x: Token) -> Token:
        return _TOKEN

    def sigmoid(self, x: Token) -> Token:
        return _TOKEN

    def erf(self, x: Token) -> Token:
        return _TOKEN

    def floor(self, x: Token) -> Token:
        return _TOKEN

    def ceil(self, x: Token) -> Token:
        return _TOKEN

    def trunc(self, x: Token) -> Token:
        return _TOKEN

    def round(self, x: Token) -> Token:
        return _TOKEN

    def sign(self, x: Token) -> Token:
        return _TOKEN

    def isnan(self, x: Token) -> Token:
        return _TOKEN

    def isinf(self, x: Token) -> Token:
        return _TOKEN

    def logical_not(self, x: Token) -> Token:
        return _TOKEN

    def bitwise_not(self, x: Token) -> Token:
        return _TOKEN

    # -- binary ----------------------------------------------------------------
    def add(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def sub(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def mul(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def truediv(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def floordiv(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def mod(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def pow(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def atan2(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def maximum(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def minimum(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def eq(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def ne(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def lt(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def le(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def gt(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def ge(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def logical_and(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def logical_or(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def logical_xor(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def bitwise_and(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def bitwise_or(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def bitwise_xor(self, a: Token, b: Token) -> Token:
        return _TOKEN

    def math_fn(self, name: str, *args: Token) -> Token:
        return _TOKEN


def record_loads(
    data: Pointwise | Reduction,
    index: Sequence[sympy.Expr],
    rindex: Sequence[sympy.Expr] = (),
) -> list[Load]:
    """The loads |data|'s body makes at |index| (and |rindex| for a Reduction)."""
    recorder = LoadRecorder()
    if isinstance(data, Reduction):
        data.inner_fn(recorder, list(index), list(rindex))
    else:
        data.inner_fn(recorder, list(index))
    return recorder.loads


def node_reads(node: ComputedBuffer) -> set[str]:
    """Names of the buffers |node| reads, at its own (symbolic) loop variables."""
    data = node.data
    if isinstance(data, Reduction):
        loads = record_loads(
            data, index_vars(len(data.ranges)), reduction_vars(len(data.reduction_ranges))
        )
    else:
        loads = record_loads(data, index_vars(len(data.ranges)))
    return {load.name for load in loads}


def kernel_bytes(
    kernel: LoopKernel, buffers: dict[str, Buffer], skip_reads: AbstractSet[str] = frozenset()
) -> tuple[sympy.Expr, sympy.Expr]:
    """(bytes read, bytes written) of |kernel| per [Note: bytes counting].
    |buffers| maps every buffer name of the graph to its Buffer; reads of
    |skip_reads| are not counted."""
    written = {node.name for node in kernel.nodes}
    read: set[str] = set()
    for node in kernel.nodes:
        read |= node_reads(node)
    read -= written | kernel.local | skip_reads
    materialised = written - kernel.local
    bytes_read = sympy.Add(*[buffers[name].nbytes() for name in sorted(read)])
    bytes_written = sympy.Add(
        *[node.nbytes() for node in kernel.nodes if node.name in materialised]
    )
    return sympy.sympify(bytes_read), sympy.sympify(bytes_written)


def epilogue_bytes(call: ExternCall, buffers: dict[str, Buffer]) -> tuple[sympy.Expr, sympy.Expr]:
    """What a fused epilogue adds to its extern call's (bytes read, bytes
    written) ([Note: epilogue fusion]): buffers the extern does not already
    read; not the extern's output, which it reads back from cache; and its
    own stores, less the output's when it overwrites the output's memory."""
    epilogue = call.epilogue
    assert epilogue is not None
    output = call.node.outputs[0]
    seen = {
        view.data.name if isinstance(view, ReinterpretView) else view.name
        for view in call.node.inputs
    }
    seen.add(output.name)
    read, written = kernel_bytes(epilogue, buffers, skip_reads=seen)
    if call.epilogue_shares is not None:
        written = written - output.nbytes()
    return read, written


def extern_bytes(call: ExternCall) -> tuple[sympy.Expr, sympy.Expr]:
    """(bytes read, bytes written) of an extern kernel per [Note: bytes counting]."""
    node = call.node
    inputs: dict[str, Buffer] = {}
    for value in node.inputs[1:] if call.in_place else node.inputs:
        buffer = value.data if isinstance(value, ReinterpretView) else value
        inputs.setdefault(buffer.name, buffer)
    read = sympy.Add(*[b.nbytes() for b in inputs.values()])
    if not call.in_place:
        written = sympy.Add(*[b.nbytes() for b in node.outputs])
        return sympy.sympify(read), sympy.sympify(written)
    # Scatter writes one element per index position, index_put one per element
    # of its values, broadcast to the indexed shape: input 1 either way.
    written = product(list(node.inputs[1].layout.sizes)) * node.outputs[0].dtype.itemsize
    accumulates = node.params.get("reduce", "none") != "none" or node.params.get("accumulate")
    return sympy.sympify(read + (written if accumulates else 0)), sympy.sympify(written)
