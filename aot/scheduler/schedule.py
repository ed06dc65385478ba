"""Schedule: the scheduler's output and codegen's input — kernels in order,
and where every buffer lives."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import ComputedBuffer, ExternKernel


@dataclass
class LoopKernel:
    """One generated loop nest. For each index of |outer| (flattened and run in
    parallel through the host's parallel_for), the nodes run in order:
    - a Reduction with ranges == outer and reduction_ranges == inner
      accumulates over |inner| into a scalar;
    - a Pointwise with ranges == outer + inner loops over |inner|;
    - a Pointwise with ranges == outer computes one element.
    Loads of buffers in |local| (written by an earlier node of this kernel at
    the same outer index) read that node's scalar or the current inner element
    instead of memory; such buffers are never materialised. A plain pointwise
    kernel has inner == []."""

    name: str  # "kernel3"; its debug handle is f"{name}:0"
    nodes: list[ComputedBuffer]
    outer: list[sympy.Expr]
    inner: list[sympy.Expr] = field(default_factory=list)
    local: set[str] = field(default_factory=set)
    # Costs ([Note: bytes counting], [Note: FLOP counting]), set by schedule().
    bytes_read: sympy.Expr = sympy.Integer(0)
    bytes_written: sympy.Expr = sympy.Integer(0)
    flops: sympy.Expr = sympy.Integer(0)


@dataclass
class ExternCall:
    name: str  # "extern2"
    node: ExternKernel
    bytes_read: sympy.Expr = sympy.Integer(0)
    bytes_written: sympy.Expr = sympy.Integer(0)
    flops: sympy.Expr = sympy.Integer(0)
    in_place: bool = False  # writes into its self input's memory (inplace.py)
    # A pointwise kernel run on each stored output row segment, and the
    # buffer of it that shares the output's memory ([Note: epilogue fusion]).
    epilogue: LoopKernel | None = None
    epilogue_shares: str | None = None


@dataclass
class WriteBack:
    """A mutation the wrapper copies back after the last kernel (one that
    could not be written in place): |nbytes| read and as many written."""

    what: str  # "input 0" | "state cache"
    buffer: str  # the new value's buffer
    nbytes: sympy.Expr


class Storage(enum.Enum):
    INPUT = "input"  # args->inputs[i]
    CONSTANT = "constant"  # bindings[i] (STATE too)
    OUTPUT = "output"  # args->outputs[i]
    WORKSPACE = "workspace"  # workspace + offset
    LOCAL = "local"  # lives in registers inside one LoopKernel


@dataclass
class Placement:
    storage: Storage
    index: int = 0  # input/constant/output number
    offset: sympy.Expr = sympy.Integer(0)  # bytes into the workspace (64-byte aligned)


@dataclass
class Schedule:
    graph: LoweredGraph
    kernels: list[LoopKernel | ExternCall]
    placements: dict[str, Placement]  # buffer name -> where it lives
    workspace_bytes: sympy.Expr
    writebacks: list[WriteBack] = field(default_factory=list)
