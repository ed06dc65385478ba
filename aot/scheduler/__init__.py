"""The scheduler: fusion decisions, in-place mutations, bytes moved and FLOPs,
buffer lifetimes and the memory plan. One entry point,
``schedule(graph) -> Schedule``."""

from __future__ import annotations

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer, ExternKernel
from .bytes import epilogue_bytes, extern_bytes, kernel_bytes, node_reads
from .epilogue import attach_epilogues
from .flops import extern_flops, loop_flops
from .fusion import fuse
from .inplace import in_place_placements
from .memory import plan_memory
from .schedule import ExternCall, LoopKernel, Placement, Schedule, Storage, WriteBack


def schedule(graph: LoweredGraph) -> Schedule:
    """Groups |graph|'s nodes into kernels and places every buffer."""
    buffers = _buffers_by_name(graph)
    # 1. Every buffer a body or an extern reads exists (a lowering bug otherwise).
    _check_reads(graph, buffers)
    # 2. Fusion: LoopKernels and ExternCalls in order, local buffers marked
    #    ([Note: fusion rules] in fusion.py).
    kernels = fuse(graph)
    # 3. Mutations written straight into the mutated memory where that is safe
    #    ([Note: in-place mutations]).
    in_place = in_place_placements(graph, kernels)
    # 4. Pointwise consumers of GEMM/convolution outputs run inside the extern
    #    call ([Note: epilogue fusion]).
    kernels = attach_epilogues(graph, kernels)
    # 5. Bytes each kernel reads and writes, and its FLOPs ([Note: bytes
    #    counting], [Note: FLOP counting]).
    for kernel in kernels:
        if isinstance(kernel, LoopKernel):
            kernel.bytes_read, kernel.bytes_written = kernel_bytes(kernel, buffers)
            kernel.flops = loop_flops(kernel, buffers)
        else:
            kernel.in_place = kernel.node.outputs[0].name in in_place
            kernel.bytes_read, kernel.bytes_written = extern_bytes(kernel)
            kernel.flops = extern_flops(kernel)
            if kernel.epilogue is not None:
                _add_epilogue_costs(kernel, buffers)
    # 6. Memory plan: placements and the workspace arena ([Note: memory plan]).
    placements, workspace_bytes = plan_memory(graph, kernels, in_place)
    return Schedule(graph, kernels, placements, workspace_bytes, _writebacks(graph, in_place))


def _add_epilogue_costs(call: ExternCall, buffers: dict[str, Buffer]) -> None:
    """Adds a fused epilogue's bytes and FLOPs to |call|'s."""
    assert call.epilogue is not None
    read, written = epilogue_bytes(call, buffers)
    call.bytes_read = call.bytes_read + read
    call.bytes_written = call.bytes_written + written
    call.flops = call.flops + loop_flops(call.epilogue, buffers)


def _writebacks(graph: LoweredGraph, in_place: dict[str, Placement]) -> list[WriteBack]:
    """The mutations the wrapper still copies back after the last kernel."""
    targets = [(f"input {i}", buf) for i, buf in graph.input_mutations]
    targets += [(f"state {name}", buf) for name, buf in graph.state_mutations]
    return [
        WriteBack(what, buf.name, buf.nbytes()) for what, buf in targets if buf.name not in in_place
    ]


def _buffers_by_name(graph: LoweredGraph) -> dict[str, Buffer]:
    buffers: dict[str, Buffer] = {}
    candidates: list[Buffer] = [*graph.inputs, *(c.buffer for c in graph.constants)]
    for node in graph.nodes:
        candidates.extend(node.outputs if isinstance(node, ExternKernel) else [node])
    for buf in candidates:
        if buf.name in buffers and buffers[buf.name] is not buf:
            raise ValueError(f"graph {graph.name!r}: two buffers are named {buf.name!r}")
        buffers[buf.name] = buf
    return buffers


def _check_reads(graph: LoweredGraph, buffers: dict[str, Buffer]) -> None:
    written: set[str] = {buf.name for buf in graph.inputs}
    written |= {c.buffer.name for c in graph.constants}
    for node in graph.nodes:
        if isinstance(node, ExternKernel):
            reads = {v.name if isinstance(v, Buffer) else v.data.name for v in node.inputs}
            outputs = [buf.name for buf in node.outputs]
        else:
            reads, outputs = node_reads(node), [node.name]
        missing = sorted(reads - written)
        if missing:
            raise ValueError(
                f"graph {graph.name!r}: {node.name} reads {', '.join(missing)} "
                "before any node writes it"
            )
        written |= set(outputs)
    unwritten = [buf.name for buf in graph.outputs if buf.name not in written]
    if unwritten:
        raise ValueError(f"graph {graph.name!r}: outputs {unwritten} are never written")


__all__ = [
    "ExternCall",
    "LoopKernel",
    "Placement",
    "Schedule",
    "Storage",
    "WriteBack",
    "schedule",
]
