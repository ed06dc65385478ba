"""What the Triton backend hands to the build and the wrapper: kernel sources
and how to launch them.

[Note: Triton launches] Every schedule kernel (a LoopKernel or an ExternCall)
becomes one or more TritonKernels, launched in order. A TritonKernel is
self-contained: |source| is a Python module text defining one ``@triton.jit``
function named |name| (helpers it calls are defined in the same text), so the
build can compile it offline without importing anything of aotc's.

Its runtime parameters are |args|, in the function's parameter order, then its
``tl.constexpr`` parameters, whose values are |constexprs| (compiled in, never
passed). The build adds nothing to the source: Triton's hidden trailing
parameters (scratch pointers) are the wrapper's business, read from the
compiled metadata.

- A "pointer" arg is the address of |buffer|'s memory (the wrapper's buffer
  table) plus |offset| elements of |dtype|: extern kernels read views this
  way. Loop kernels index from the buffer's start (offset 0).
- A "size" arg is an integer expression over the graph's size symbols (s0,
  s1, ...), evaluated per run by the wrapper: a dynamic size, a stride, a
  numel. Static values belong in |constexprs| or the source instead.
- A "float" arg is a float64 value computed at export time (rare: constants go
  in the source).

|grid| is the number of programs on each axis, as size expressions (ceil
divisions as FloorDiv(n + B - 1, B)); a zero on any axis means the launch is
skipped. Triton programs are one CTA each; |num_warps| x 32 threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import sympy
import torch

ArgKind = Literal["pointer", "size", "float"]

# Triton signature spellings of the dtypes aotc buffers have.
TRITON_POINTER_TYPES: dict[torch.dtype, str] = {
    torch.float32: "*fp32",
    torch.float64: "*fp64",
    torch.float16: "*fp16",
    torch.bfloat16: "*bf16",
    torch.int8: "*i8",
    torch.uint8: "*u8",
    torch.int16: "*i16",
    torch.int32: "*i32",
    torch.int64: "*i64",
    torch.bool: "*i1",
}


@dataclass
class TritonArg:
    """One runtime parameter of a Triton kernel (see [Note: Triton launches])."""

    name: str  # the parameter's name in the source
    kind: ArgKind
    buffer: str | None = None  # pointer: the IR buffer it points into
    dtype: torch.dtype | None = None  # pointer: element type
    offset: sympy.Expr = sympy.Integer(0)  # pointer: in elements from the buffer's start
    value: sympy.Expr | float | None = None  # size: an int expression; float: a number

    def signature(self) -> str:
        """Triton's signature type: "*fp32", "i64", "fp64"."""
        if self.kind == "pointer":
            if self.dtype not in TRITON_POINTER_TYPES:
                raise ValueError(f"{self.name}: no Triton pointer type for {self.dtype}")
            return TRITON_POINTER_TYPES[self.dtype]
        return "i64" if self.kind == "size" else "fp64"


@dataclass
class TritonKernel:
    """One Triton kernel and its launch (see [Note: Triton launches])."""

    name: str  # the @triton.jit function's name; unique within a model
    source: str  # a Python module defining it
    args: list[TritonArg]
    grid: tuple[sympy.Expr, sympy.Expr, sympy.Expr]
    constexprs: dict[str, int | float | bool] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 1
    # Pointer args whose buffer the kernel writes (for the wrapper's comments
    # and the 16-byte variant choice, which covers every pointer).
    writes: set[str] = field(default_factory=set)
    # Descriptions of the kernel's run-time index checks, by check number
    # ([Note: GPU index checks] in context.py): "input \"idx\"".
    index_checks: list[str] = field(default_factory=list)

    def signature(self) -> dict[str, str]:
        """The signature triton.compile's ASTSource takes."""
        out = {a.name: a.signature() for a in self.args}
        out.update({name: "constexpr" for name in self.constexprs})
        return out


class TritonCodegenError(Exception):
    """A node the Triton backend cannot generate a kernel for (yet), with the
    reason; export turns it into an error naming the model line."""
