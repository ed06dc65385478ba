"""Memory plan: where every buffer lives, and one workspace arena per run.

[Note: memory plan] Graph inputs, constants (STATE too) and outputs live in
memory the runtime hands over (INPUT i, CONSTANT i, OUTPUT i); buffers local
to a LoopKernel live in registers (LOCAL). Every other buffer gets a byte
offset into the workspace, fixed at compile time:
- its lifetime runs from the kernel that writes it to the last kernel that
  reads it (a mutation's new value lives to the end: the wrapper copies it
  back after the last kernel) unless it is written in place (inplace.py);
- before kernel k allocates, the blocks of buffers last read before k are
  freed, so a kernel never writes over memory it reads;
- blocks are rounded up to 64 bytes. A static size takes the first free
  static block big enough (split, remainder stays free) or grows a free
  block at the arena's end; a symbolic size takes a free block whose size is
  the identical expression. Otherwise the block is appended, so offsets and
  workspace_bytes are sympy expressions over the size symbols. Adjacent free
  static blocks merge.
Outputs never alias the workspace: they are never placed in it. A GEMM or
convolution output whose fused epilogue overwrites it in place shares the
epilogue output's placement ([Note: epilogue fusion]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import Buffer
from ..ir.symbols import FloorDiv
from .fusion import live_at_end, readers
from .schedule import ExternCall, LoopKernel, Placement, Storage

ALIGNMENT = 64


def aligned_size(nbytes: sympy.Expr) -> sympy.Expr:
    """|nbytes| rounded up to a multiple of ALIGNMENT."""
    nbytes = sympy.sympify(nbytes)
    if nbytes.is_Integer:
        return sympy.Integer(-(-int(nbytes) // ALIGNMENT) * ALIGNMENT)
    return FloorDiv(nbytes + ALIGNMENT - 1, ALIGNMENT) * ALIGNMENT


@dataclass
class _Block:
    offset: sympy.Expr
    size: sympy.Expr
    owner: str | None  # None: free

    def is_static(self) -> bool:
        return bool(self.size.is_Integer)


class Arena:
    """The workspace: blocks in offset order covering [0, end)."""

    def __init__(self) -> None:
        self.blocks: list[_Block] = []

    @property
    def end(self) -> sympy.Expr:
        if not self.blocks:
            return sympy.Integer(0)
        last = self.blocks[-1]
        return sympy.sympify(last.offset + last.size)

    def allocate(self, owner: str, nbytes: sympy.Expr) -> sympy.Expr:
        size = aligned_size(nbytes)
        if size == 0:
            return sympy.Integer(0)
        for k, block in enumerate(self.blocks):
            if block.owner is not None:
                continue
            if size.is_Integer and block.is_static() and int(block.size) >= int(size):
                rest = int(block.size) - int(size)
                block.owner, block.size = owner, size
                if rest:
                    self.blocks.insert(
                        k + 1, _Block(block.offset + size, sympy.Integer(rest), None)
                    )
                return block.offset
            if not size.is_Integer and block.size == size:
                block.owner = owner
                return block.offset
        if self.blocks and self.blocks[-1].owner is None:
            last = self.blocks[-1]
            if size.is_Integer and last.is_static():  # grow the free tail
                last.owner, last.size = owner, size
                return last.offset
        offset = self.end
        self.blocks.append(_Block(offset, size, owner))
        return offset

    def free(self, owner: str) -> None:
        for block in self.blocks:
            if block.owner == owner:
                block.owner = None
        self._merge()

    def _merge(self) -> None:
        merged: list[_Block] = []
        for block in self.blocks:
            prev = merged[-1] if merged else None
            if (
                prev is not None
                and prev.owner is None
                and block.owner is None
                and prev.is_static()
                and block.is_static()
            ):
                prev.size = prev.size + block.size
            else:
                merged.append(block)
        self.blocks = merged


def plan_memory(
    graph: LoweredGraph,
    kernels: Sequence[LoopKernel | ExternCall],
    in_place: Mapping[str, Placement] | None = None,
) -> tuple[dict[str, Placement], sympy.Expr]:
    """Placements for every buffer of |graph| and the workspace size in bytes,
    per [Note: memory plan]. |in_place| places mutations' new values in the
    mutated memory ([Note: in-place mutations])."""
    placements: dict[str, Placement] = dict(in_place or {})
    for i, buf in enumerate(graph.inputs):
        placements[buf.name] = Placement(Storage.INPUT, i)
    for i, constant in enumerate(graph.constants):
        placements[constant.buffer.name] = Placement(Storage.CONSTANT, i)
    for i, buf in enumerate(graph.outputs):
        placements[buf.name] = Placement(Storage.OUTPUT, i)

    written: list[list[Buffer]] = [_written(kernel) for kernel in kernels]
    # A GEMM/convolution output overwritten by its epilogue lives in the
    # epilogue output's memory ([Note: epilogue fusion]).
    shared = {
        k.node.outputs[0].name: k.epilogue_shares
        for k in kernels
        if isinstance(k, ExternCall) and k.epilogue_shares is not None
    }
    read_by = readers(kernels)
    forever = len(kernels)
    keep = live_at_end(graph)
    last_use: dict[str, int] = {}
    for k, buffers in enumerate(written):
        for buf in buffers:
            if buf.name in placements:
                continue
            if buf.name in _locals(kernels[k]):
                placements[buf.name] = Placement(Storage.LOCAL)
                continue
            if buf.name in shared:
                continue  # placed with its epilogue's output, below
            last_use[buf.name] = forever if buf.name in keep else max(read_by.get(buf.name, {k}))

    arena = Arena()
    for k, buffers in enumerate(written):
        for name in [n for n, last in last_use.items() if last == k - 1]:
            arena.free(name)
        for buf in buffers:
            if buf.name in last_use:
                offset = arena.allocate(buf.name, buf.nbytes())
                placements[buf.name] = Placement(Storage.WORKSPACE, offset=offset)
    for output, epilogue_output in shared.items():
        placements[output] = placements[epilogue_output]
    return placements, arena.end


def _written(kernel: LoopKernel | ExternCall) -> list[Buffer]:
    if isinstance(kernel, ExternCall):
        fused = kernel.epilogue.nodes if kernel.epilogue else []
        return [*kernel.node.outputs, *fused]
    return list(kernel.nodes)


def _locals(kernel: LoopKernel | ExternCall) -> set[str]:
    if isinstance(kernel, ExternCall):
        return kernel.epilogue.local if kernel.epilogue else set()
    return kernel.local
