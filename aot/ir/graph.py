"""LoweredGraph: the whole model in IR, the lowering stage's output and the
scheduler's input."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
import torch

from .nodes import Buffer, ComputedBuffer, ExternKernel


@dataclass
class Constant:
    """A weight, buffer or lifted constant: |buffer| (kind CONSTANT or STATE)
    holds |value| at run time. Tied parameters are one Constant."""

    name: str  # the state-dict / FQN name ("fc1.weight")
    buffer: Buffer
    value: torch.Tensor  # contiguous, CPU, in the model's dtype


@dataclass
class SymbolInfo:
    """A dynamic size: read from input |input_index| dim |dim|, in [low, high]."""

    symbol: sympy.Symbol
    input_index: int
    dim: int
    low: int
    high: int


@dataclass
class LoweredGraph:
    name: str
    inputs: list[Buffer]  # kind INPUT, in the model's argument order
    input_names: list[str]  # user-facing names ("x", "idx")
    constants: list[Constant]
    nodes: list[ComputedBuffer | ExternKernel]  # execution order
    outputs: list[Buffer]  # distinct buffers, none an input or constant
    output_names: list[str]
    symbols: list[SymbolInfo] = field(default_factory=list)
    # Relations between input dims that export recorded (e.g. y.shape[0] ==
    # 2*s0): (input_index, dim, expression over symbols).
    dim_relations: list[tuple[int, int, sympy.Expr]] = field(default_factory=list)
    # In-place updates to write back after the run: (input index or constant
    # name, buffer with the new value).
    input_mutations: list[tuple[int, Buffer]] = field(default_factory=list)
    state_mutations: list[tuple[str, Buffer]] = field(default_factory=list)
