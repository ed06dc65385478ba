"""IR nodes.

[Note: aotc IR] Lowering turns each aten op into a TensorValue:
- a Buffer: memory with a name, dtype and Layout (graph inputs, constants,
  computed buffers, extern kernel outputs);
- a ReinterpretView: a strided view of a Buffer (permute, expand, slice,
  select, contiguous reshape) — no copy;
- a Loops node (Pointwise, Reduction, WelfordReduction): not yet in memory. Pointwise values
  stay unrealized and are inlined (recomputed) into whatever reads them, which
  is how pointwise chains and pointwise prologues fuse. Reductions are always
  realized into a ComputedBuffer;
- a GenericView: an arbitrary index remapping of another value (reshape of a
  non-contiguous value, pad, cat pieces...).

Every TensorValue gives its sizes (sympy expressions; static sizes are
Integers) and a loader: ``loader(ops, index) -> value``, the body that reads
element |index|. Bodies only talk to the ops handler (ops.py), so every
backend shares all lowering.

ExternKernel nodes (GEMM, convolution, pooling, attention) are calls to
hand-written or templated kernels with explicit input and output buffers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch

from .symbols import contiguous_strides, flat_index, product, reduction_vars

# loader(ops, index) -> value; index has one entry per dim.
Loader = Callable[[Any, Sequence[sympy.Expr]], Any]


@dataclass(frozen=True)
class Layout:
    """Where a tensor's elements live in its buffer, in elements."""

    sizes: tuple[sympy.Expr, ...]
    strides: tuple[sympy.Expr, ...]
    offset: sympy.Expr = sympy.Integer(0)

    @staticmethod
    def contiguous(sizes: Sequence[sympy.Expr]) -> Layout:
        sizes = tuple(sympy.sympify(s) for s in sizes)
        return Layout(sizes, tuple(contiguous_strides(list(sizes))))

    def index(self, index: Sequence[sympy.Expr]) -> sympy.Expr:
        return self.offset + flat_index(list(index), list(self.strides))

    def numel(self) -> sympy.Expr:
        return product(list(self.sizes))

    def is_contiguous(self) -> bool:
        if self.offset != 0:
            return False
        expected = contiguous_strides(list(self.sizes))
        return all(
            size == 1 or stride == want
            for size, stride, want in zip(self.sizes, self.strides, expected, strict=True)
        )


class BufferKind(enum.Enum):
    INPUT = "input"  # a user input of the graph
    CONSTANT = "constant"  # a weight, buffer or lifted constant (bound at create)
    STATE = "state"  # a mutable buffer (BUFFER_MUTATION): constant memory runs write
    COMPUTED = "computed"  # produced by a kernel of this graph


@dataclass(eq=False)
class Buffer:
    """A named block of memory. Contiguous layout unless it is an input (whose
    layout the ABI makes contiguous too)."""

    name: str
    dtype: torch.dtype
    layout: Layout
    kind: BufferKind = BufferKind.COMPUTED
    # Where the value comes from, for provenance (FX node names).
    origins: tuple[str, ...] = ()

    def get_size(self) -> list[sympy.Expr]:
        return list(self.layout.sizes)

    def make_loader(self) -> Loader:
        name, layout = self.name, self.layout

        def load(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return ops.load(name, layout.index(index))

        return load

    def nbytes(self) -> sympy.Expr:
        return self.layout.numel() * _itemsize(self.dtype)


@dataclass(eq=False)
class Loops:
    """Base of unrealized compute: a value per index of |ranges|."""

    ranges: list[sympy.Expr]
    dtype: torch.dtype

    def get_size(self) -> list[sympy.Expr]:
        return list(self.ranges)


@dataclass(eq=False)
class Pointwise(Loops):
    """inner_fn(ops, index) -> value for each index in ranges."""

    inner_fn: Loader = field(default=None)  # type: ignore[assignment]

    def make_loader(self) -> Loader:
        return self.inner_fn


# Reduction types and their identity (the accumulator's start value).
REDUCTION_TYPES = ("sum", "prod", "max", "min", "any", "all", "argmax", "argmin", "welford")


@dataclass(eq=False)
class Reduction(Loops):
    """Reduces inner_fn(ops, index, rindex) over |reduction_ranges| for each
    index in |ranges|. argmax/argmin return the first index of the extreme
    (flattened over reduction_ranges) and propagate NaN as torch does; their
    dtype is int64. |src_dtype| is the dtype of inner_fn's values (float32
    for bf16 inputs); |dtype| the result's."""

    reduction_ranges: list[sympy.Expr] = field(default_factory=list)
    reduction_type: str = "sum"
    inner_fn: Callable[[Any, Sequence[sympy.Expr], Sequence[sympy.Expr]], Any] = field(
        default=None  # type: ignore[assignment]
    )
    src_dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.reduction_type not in REDUCTION_TYPES:
            raise ValueError(f"unknown reduction type {self.reduction_type!r}")
        if self.reduction_type == "welford" and not isinstance(self, WelfordReduction):
            raise ValueError("a 'welford' reduction is a WelfordReduction (two outputs)")

    def make_loader(self) -> Loader:
        raise TypeError("a Reduction must be realized into a ComputedBuffer before it is read")

    def reduction_index(self) -> list[sympy.Symbol]:
        return reduction_vars(len(self.reduction_ranges))


# [Note: multi-output reductions] A Welford reduction computes, in ONE pass
# over reduction_ranges, the running (mean, m2, weight) of inner_fn's float
# values (Welford's online update: weight += 1; d = v - mean; mean += d /
# weight; m2 += d * (v - mean); partial accumulators merge with Chan's
# formula). It has two outputs, each its own ComputedBuffer:
# ctx.reduce_welford(...) returns (mean, m2), two ComputedBuffers whose data
# are WelfordReductions with the same ranges, reduction_ranges, inner_fn and
# |group| (the mean buffer's name), and output_index 0 (mean) and 1 (m2: the
# sum of squared deviations; the variance is m2 / (N - correction), computed
# by the pointwise that reads it; N is static or symbolic, so the weight is
# not an output). The two are recorded consecutively, so fusion sees them as
# two Reductions of one structure and reading the same values: they always
# land in one LoopKernel (fusion.py asserts it), and codegen folds every
# WelfordReduction of a group into one accumulator written to both buffers.
# Everything that treats a node alone (bytes, locals, memory plan) works
# unchanged: each output is an ordinary buffer. The mean of an empty
# reduction is NaN (as torch's mean), its m2 0. dtype == src_dtype (float32
# for bf16/fp16 values). argmax/argmin are single-output Reductions.
WELFORD_OUTPUTS = ("mean", "m2")


@dataclass(eq=False)
class WelfordReduction(Reduction):
    """One output (|output_index|: 0 mean, 1 m2) of the Welford reduction
    |group|; see [Note: multi-output reductions]."""

    output_index: int = 0
    group: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduction_type != "welford":
            raise ValueError("a WelfordReduction has reduction_type 'welford'")
        if not 0 <= self.output_index < len(WELFORD_OUTPUTS):
            raise ValueError(f"Welford output index {self.output_index} out of range")


@dataclass(eq=False)
class ComputedBuffer(Buffer):
    """A Buffer that a loop kernel writes: |data| computes element by element."""

    data: Pointwise | Reduction = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class ReinterpretView:
    """A strided view of |data| with its own layout (same storage)."""

    data: Buffer
    layout: Layout

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def get_size(self) -> list[sympy.Expr]:
        return list(self.layout.sizes)

    def make_loader(self) -> Loader:
        name, layout = self.data.name, self.layout

        def load(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return ops.load(name, layout.index(index))

        return load


@dataclass(eq=False)
class GenericView:
    """|data| read through |reindex|: element |index| of the view is element
    reindex(index) of data."""

    data: TensorValue
    size: list[sympy.Expr]
    reindex: Callable[[Sequence[sympy.Expr]], Sequence[sympy.Expr]]

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    def get_size(self) -> list[sympy.Expr]:
        return list(self.size)

    def make_loader(self) -> Loader:
        inner, reindex = self.data.make_loader(), self.reindex

        def load(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return inner(ops, reindex(index))

        return load


@dataclass(eq=False)
class ExternKernel:
    """A call to a hand-written or template kernel. |kind| names it (e.g.
    "addmm", "convolution", "max_pool", "sdpa"); |inputs| are views of
    buffers (strides are passed to the kernel, so transposed operands cost no
    copy); |outputs| are the contiguous buffers it writes; |params| holds the
    op's scalar arguments (stride, padding, alpha, is_causal ...)."""

    name: str
    kind: str
    inputs: list[Buffer | ReinterpretView]
    outputs: list[Buffer]
    params: dict[str, Any] = field(default_factory=dict)
    origins: tuple[str, ...] = ()


TensorValue = Buffer | ReinterpretView | Pointwise | GenericView


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
