"""The scheduler: fusion decisions, bytes moved, buffer lifetimes and the
memory plan. One entry point, ``schedule(graph) -> Schedule``."""

from __future__ import annotations

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer, ExternKernel
from .bytes import kernel_bytes, node_reads
from .fusion import fuse
from .memory import plan_memory
from .schedule import ExternCall, LoopKernel, Placement, Schedule, Storage


def schedule(graph: LoweredGraph) -> Schedule:
    """Groups |graph|'s nodes into kernels and places every buffer."""
    buffers = _buffers_by_name(graph)
    # 1. Every buffer a body or an extern reads exists (a lowering bug otherwise).
    _check_reads(graph, buffers)
    # 2. Fusion: LoopKernels and ExternCalls in order, local buffers marked
    #    ([Note: fusion rules] in fusion.py).
    kernels = fuse(graph)
    # 3. Bytes each LoopKernel reads and writes ([Note: bytes counting]).
    for kernel in kernels:
        if isinstance(kernel, LoopKernel):
            kernel.bytes_read, kernel.bytes_written = kernel_bytes(kernel, buffers)
    # 4. Memory plan: placements and the workspace arena ([Note: memory plan]).
    placements, workspace_bytes = plan_memory(graph, kernels)
    return Schedule(graph, kernels, placements, workspace_bytes)


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


__all__ = ["ExternCall", "LoopKernel", "Placement", "Schedule", "Storage", "schedule"]
