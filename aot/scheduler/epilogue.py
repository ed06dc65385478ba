"""Epilogue fusion: a pointwise kernel that consumes a GEMM or convolution
output runs inside that extern call, row by row, while the output is in cache.

[Note: epilogue fusion] fuse() closes a group at every ExternKernel, so
``relu(linear(x))``, ``bn(conv(x))`` or ``linear(x) + residual`` become an
extern call and a pointwise LoopKernel that reads the whole output back. Here
an ExternCall E of a kind whose C++ kernel takes an epilogue (EPILOGUE_KINDS)
absorbs the first LoopKernel K after it that reads its output O and can be
its epilogue. K moves up to E; kernels in between that K needs move up
before E, when they can (they must not read O or write a mutation: batch
norm's per-channel scale and shift after a convolution). K can be an
epilogue when:
- K is pure pointwise (no inner loop, only Pointwise nodes) over O's
  elements in order, row for row: the same element count and last dim, two
  dims or more (O itself, or a view such as linear's [B*T, N] as [B, T, N]):
  codegen runs K's body over one row segment [c0, c1) of O's last dim per
  call ([Note: extern epilogues] in aotc_cpu_kernels.h: the kernel calls
  epi(row, c0, c1) once per stored segment, from any thread);
- every load K makes of O, or of K's own nodes, is at the element K is
  computing (aligned with O's contiguous layout): a segment's epilogue may
  only look at elements the kernel has already stored;
- K writes no mutation's new value (inplace.py placed those already).
K's other loads (bias, batch-norm statistics, a residual) read memory that
was complete before E started.

The epilogue's output may then take O's memory (ExternCall.epilogue_shares):
when O is read by nothing but K, K stores exactly one buffer S with O's
contiguous layout (in K's loop order) and element size, O is placed
wherever S is (the memory plan aliases the two), so the GEMM writes S's
memory and the epilogue overwrites it element by element: the output makes
one trip through memory, not three.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer, Layout, Pointwise
from ..ir.symbols import merge_div_mod, product
from .bytes import record_loads
from .fusion import kernel_reads, live_at_end, loop_args, same_expr, same_sizes
from .schedule import ExternCall, LoopKernel

# Extern kinds whose C++ kernel calls an Epilogue functor.
EPILOGUE_KINDS = frozenset({"mm", "addmm", "bmm", "convolution"})


def attach_epilogues(
    graph: LoweredGraph, kernels: Sequence[LoopKernel | ExternCall]
) -> list[LoopKernel | ExternCall]:
    """|kernels| with each fusible pointwise kernel moved into the extern
    call before it ([Note: epilogue fusion])."""
    mutations = {buf.name for _, buf in graph.input_mutations}
    mutations |= {buf.name for _, buf in graph.state_mutations}
    keep = live_at_end(graph)
    readers_of: dict[str, list[LoopKernel | ExternCall]] = {}
    for kernel in kernels:
        for name in kernel_reads(kernel):
            readers_of.setdefault(name, []).append(kernel)
    order = list(kernels)
    k = 0
    while k < len(order):
        call = order[k]
        if isinstance(call, ExternCall) and call.node.kind in EPILOGUE_KINDS:
            output = call.node.outputs[0]
            for j in range(k + 1, len(order)):
                candidate = order[j]
                if not (
                    isinstance(candidate, LoopKernel)
                    and output.name in kernel_reads(candidate)
                    and _fusible(call, candidate, mutations)
                ):
                    continue
                hoisted = _hoistable(order, k, j, output.name, mutations)
                if hoisted is None:
                    continue
                call.epilogue = candidate
                only_reader = [r is candidate for r in readers_of[output.name]] == [True]
                if output.name not in keep and only_reader:
                    call.epilogue_shares = _shared_output(output, candidate)
                rest = [order[i] for i in range(k + 1, j) if i not in hoisted]
                order = [*order[:k], *(order[i] for i in hoisted), call, *rest, *order[j + 1 :]]
                k += len(hoisted)
                break
        k += 1
    return order


def _hoistable(
    order: Sequence[LoopKernel | ExternCall], k: int, j: int, output: str, mutations: set[str]
) -> list[int] | None:
    """Positions between the extern (k) and its epilogue (j) of the kernels
    the epilogue needs, in order, when all of them can run before the extern
    instead (pointwise or reduction kernels that neither read its output nor
    write a mutation); None otherwise. (Batch norm's per-channel scale and
    shift, computed from constants after a convolution, are one.)"""
    needed: set[int] = set()
    todo = [j]
    while todo:
        reads = kernel_reads(order[todo.pop()])
        for i in range(k + 1, j):
            if i not in needed and _writes(order[i]) & reads:
                needed.add(i)
                todo.append(i)
    for i in needed:
        kernel = order[i]
        if not isinstance(kernel, LoopKernel) or output in kernel_reads(kernel):
            return None
        if _writes(kernel) & mutations:
            return None
    return sorted(needed)


def _writes(kernel: LoopKernel | ExternCall) -> set[str]:
    if isinstance(kernel, ExternCall):
        fused = kernel.epilogue.nodes if kernel.epilogue else []
        return {b.name for b in kernel.node.outputs} | {n.name for n in fused}
    return {n.name for n in kernel.nodes}


def _fusible(call: ExternCall, kernel: LoopKernel, mutations: set[str]) -> bool:
    node = call.node
    if node.kind not in EPILOGUE_KINDS or len(node.outputs) != 1:
        return False
    output = node.outputs[0]
    if not output.layout.is_contiguous() or not _rows_match(kernel.outer, output):
        return False
    if kernel.inner or not all(isinstance(n.data, Pointwise) for n in kernel.nodes):
        return False
    if any(n.name in mutations for n in kernel.nodes):
        return False
    own = {n.name: n for n in kernel.nodes}
    flat = Layout.contiguous(list(kernel.outer))  # O's elements in K's loop order
    for n in kernel.nodes:
        index, _ = loop_args(kernel, n)
        for load in record_loads(n.data, index):
            if load.name == output.name:
                expected = flat.index(index)
            elif load.name in own:
                expected = own[load.name].layout.index(index)
            else:
                continue
            if not same_expr(merge_div_mod(load.index), expected):
                return False
    return True


def _rows_match(outer: Sequence[sympy.Expr], output: Buffer) -> bool:
    """K's loops cover O's elements in order, row for row: at least two dims,
    the same last dim and the same element count (a view of O such as
    linear's [B*T, N] as [B, T, N] qualifies)."""
    sizes = list(output.layout.sizes)
    if len(outer) < 2 or len(sizes) < 2 or not same_expr(outer[-1], sizes[-1]):
        return False
    return same_expr(product(list(outer)), product(sizes))


def _shared_output(output: Buffer, kernel: LoopKernel) -> str | None:
    """The one buffer K stores that can live in O's memory, if any: stored
    contiguously in K's loop order, with O's element size."""
    stored = [n for n in kernel.nodes if n.name not in kernel.local]
    if len(stored) != 1:
        return None
    (target,) = stored
    if not target.layout.is_contiguous() or not same_sizes(target.layout.sizes, kernel.outer):
        return None
    if target.dtype.itemsize != output.dtype.itemsize:
        return None
    if sympy.simplify(target.nbytes() - output.nbytes()) != 0:
        return None
    return target.name
