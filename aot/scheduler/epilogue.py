"""Epilogue fusion: a pointwise kernel that consumes a GEMM or convolution
output runs inside that extern call, row by row, while the output is in cache.

[Note: epilogue fusion] fuse() closes a group at every ExternKernel, so
``relu(linear(x))``, ``bn(conv(x))`` or ``linear(x) + residual`` become an
extern call and a pointwise LoopKernel that reads the whole output back. Here
an ExternCall E of a kind whose C++ kernel takes an epilogue (EPILOGUE_KINDS)
absorbs the first LoopKernel K after it that reads its output O and can be
its epilogue, moving K up to E (when K reads nothing written by the kernels
in between). K can be an epilogue when:
- K is pure pointwise (no inner loop, only Pointwise nodes) over exactly the
  sizes of E's output O, with at least two dims: codegen runs K's body over
  one row segment [c0, c1) of O's last dim per call ([Note: extern
  epilogues] in aotc_cpu_kernels.h: the kernel calls epi(row, c0, c1) once
  per stored segment, from any thread);
- every load K makes of O, or of K's own nodes, is at the element K is
  computing (aligned with O's contiguous layout): a segment's epilogue may
  only look at elements the kernel has already stored;
- K writes no mutation's new value (inplace.py placed those already).
K's other loads (bias, batch-norm statistics, a residual) read memory that
was complete before E started.

The epilogue's output may then take O's memory (ExternCall.epilogue_shares):
when O is read by nothing but K, K stores exactly one buffer S with O's
contiguous layout and element size, O is placed wherever S is (the memory plan aliases the two), so
the GEMM writes S's memory and the epilogue overwrites it element by element:
the output makes one trip through memory, not three.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer, Pointwise
from .bytes import record_loads
from .fusion import kernel_reads, live_at_end, loop_args, readers, same_expr, same_sizes
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
    read_by = readers(kernels)
    keep = live_at_end(graph)
    moved: dict[int, int] = {}  # extern position -> its epilogue's position
    for k, kernel in enumerate(kernels):
        if not isinstance(kernel, ExternCall) or kernel.node.kind not in EPILOGUE_KINDS:
            continue
        output = kernel.node.outputs[0].name
        consumer = min(
            (
                j
                for j in read_by.get(output, ())
                if j > k
                and j not in moved.values()
                and isinstance(kernels[j], LoopKernel)
                and _fusible(kernel, kernels[j], mutations)
            ),
            default=None,
        )
        if consumer is None:
            continue
        candidate = kernels[consumer]
        assert isinstance(candidate, LoopKernel)
        between = set().union(*(_writes(kernels[j]) for j in range(k + 1, consumer)))
        if kernel_reads(candidate) & between:
            continue  # it needs a kernel that runs after the extern
        kernel.epilogue = candidate
        moved[k] = consumer
        if output not in keep and read_by.get(output, set()) <= {consumer}:
            kernel.epilogue_shares = _shared_output(kernel.node.outputs[0], candidate)
    absorbed = set(moved.values())
    return [kernel for j, kernel in enumerate(kernels) if j not in absorbed]


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
    sizes = list(output.layout.sizes)
    if len(sizes) < 2 or kernel.inner or not same_sizes(kernel.outer, sizes):
        return False
    if not output.layout.is_contiguous():
        return False
    if not all(isinstance(n.data, Pointwise) for n in kernel.nodes):
        return False
    if any(n.name in mutations for n in kernel.nodes):
        return False
    own = {n.name: n for n in kernel.nodes}
    for n in kernel.nodes:
        index, _ = loop_args(kernel, n)
        for load in record_loads(n.data, index):
            if load.name == output.name:
                expected = output.layout.index(index)
            elif load.name in own:
                expected = own[load.name].layout.index(index)
            else:
                continue
            if not same_expr(load.index, expected):
                return False
    # K must read O: an independent kernel gains nothing from riding along.
    return _reads(kernel, output.name)


def _reads(kernel: LoopKernel, name: str) -> bool:
    for n in kernel.nodes:
        index, _ = loop_args(kernel, n)
        if any(load.name == name for load in record_loads(n.data, index)):
            return True
    return False


def _shared_output(output: Buffer, kernel: LoopKernel) -> str | None:
    """The one buffer K stores that can live in O's memory, if any."""
    stored = [n for n in kernel.nodes if n.name not in kernel.local]
    if len(stored) != 1:
        return None
    (target,) = stored
    if not target.layout.is_contiguous() or not same_sizes(
        target.layout.sizes, output.layout.sizes
    ):
        return None
    if target.dtype.itemsize != output.dtype.itemsize:
        return None
    if sympy.simplify(target.nbytes() - output.nbytes()) != 0:
        return None
    return target.name
