"""In-place mutations: a mutated input's (or state's) new value written straight
into the input's memory, so the wrapper has nothing to copy back.

[Note: in-place mutations] A program that mutates an input I (``x.add_(1)``,
a KV cache ``cache[:, pos] = k``) computes the new value as a buffer B; the
wrapper copies B into I after the last kernel. When it is safe, the memory
plan places B in I's memory instead (and the copy becomes a no-op). Safe
means no kernel can read I's old value after B's element overwrote it:
- B is not a user output (an output lives in the caller's output memory) and
  has I's dtype and size;
- no kernel after K, the kernel that writes B, reads I;
- K is a LoopKernel whose every load of I (in any node) reads the element B
  stores at the same iteration (the "aligned" rule of fusion.py: each outer
  iteration owns its elements, and within one the load happens before the
  store), and no node after B's node in K reads I, directly or through the
  body of a local buffer it inlines;
- or K is an in-place capable extern (IN_PLACE_EXTERNS: scatter, index_put)
  that reads I only as its contiguous ``self`` operand: with out == self the
  C++ kernel skips its copy of self and writes only the indexed elements.
ABI.md 9.4 allows it: after a failed run a mutated input is unspecified.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer, ReinterpretView
from .bytes import node_reads, record_loads
from .fusion import kernel_reads, loop_args
from .schedule import ExternCall, LoopKernel, Placement, Storage

# Extern kinds whose C++ kernel runs correctly with out == inputs[0] ("self").
IN_PLACE_EXTERNS = frozenset({"scatter", "index_put"})


def in_place_placements(
    graph: LoweredGraph, kernels: Sequence[LoopKernel | ExternCall]
) -> dict[str, Placement]:
    """New-value buffer name -> the mutated input's or state's placement, for
    every mutation that can be written in place ([Note: in-place mutations])."""
    constant_index = {c.name: i for i, c in enumerate(graph.constants)}
    targets: list[tuple[Buffer, Placement, Buffer]] = []
    for index, new in graph.input_mutations:
        targets.append((graph.inputs[index], Placement(Storage.INPUT, index), new))
    for name, new in graph.state_mutations:
        if name in constant_index:
            const = graph.constants[constant_index[name]]
            targets.append((const.buffer, Placement(Storage.CONSTANT, constant_index[name]), new))
    user_outputs = {buf.name for buf in graph.outputs}
    writer = _writers(kernels)
    reads = [kernel_reads(kernel) for kernel in kernels]
    placed: dict[str, Placement] = {}
    for old, placement, new in targets:
        if new.name in user_outputs or new.name in placed or new.name not in writer:
            continue
        if new.dtype != old.dtype or sympy.simplify(new.nbytes() - old.nbytes()) != 0:
            continue
        k = writer[new.name]
        if any(old.name in reads[j] for j in range(k + 1, len(kernels))):
            continue
        kernel = kernels[k]
        safe = (
            _loop_in_place(kernel, old.name, new.name)
            if isinstance(kernel, LoopKernel)
            else _extern_in_place(kernel, old.name)
        )
        if safe:
            placed[new.name] = placement
    return placed


def _writers(kernels: Sequence[LoopKernel | ExternCall]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, kernel in enumerate(kernels):
        if isinstance(kernel, LoopKernel):
            out.update(dict.fromkeys((node.name for node in kernel.nodes), k))
        else:
            out.update(dict.fromkeys((buf.name for buf in kernel.node.outputs), k))
    return out


def _extern_in_place(call: ExternCall, old: str) -> bool:
    node = call.node
    if node.kind not in IN_PLACE_EXTERNS or not node.inputs or len(node.outputs) != 1:
        return False
    self_value = node.inputs[0]
    if not (isinstance(self_value, Buffer) and self_value.name == old):
        return False  # self is a view of I (or not I): its elements move
    return all(view_name(v) != old for v in node.inputs[1:])


def _loop_in_place(kernel: LoopKernel, old: str, new: str) -> bool:
    position = next(k for k, node in enumerate(kernel.nodes) if node.name == new)
    new_node = kernel.nodes[position]
    index, _ = loop_args(kernel, new_node)
    store = sympy.expand(new_node.layout.index(index))
    for node in kernel.nodes[: position + 1]:
        args, rargs = loop_args(kernel, node)
        for load in record_loads(node.data, args, rargs):
            if load.name == old and sympy.expand(load.index - store) != 0:
                return False
    # Nodes after B's must not see I, not even through a local body they inline.
    local_reads = {n.name: node_reads(n) for n in kernel.nodes if n.name in kernel.local}
    for node in kernel.nodes[position + 1 :]:
        if old in _transitive_reads(node_reads(node), local_reads):
            return False
    return True


def _transitive_reads(names: set[str], local_reads: dict[str, set[str]]) -> set[str]:
    seen, todo = set(names), list(names)
    while todo:
        for name in local_reads.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def view_name(value: Buffer | ReinterpretView) -> str:
    return value.name if isinstance(value, Buffer) else value.data.name
