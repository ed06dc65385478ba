"""What every Triton generator needs to know about the graph around a kernel,
and the epilogue a template applies to its output tiles."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
import torch

from .launch import TritonArg

# The pseudo-buffer of run-time index checks ([Note: GPU index checks]).
INDEX_ERRORS = "__aotc_index_errors__"

"""
[Note: GPU index checks] A kernel that gathers through an index it computed
(embedding, gather, index_select, advanced indexing) must refuse an index
outside [0, size) with an error naming it, never read out of bounds. On the
GPU a kernel cannot return an error, so each checking kernel takes one
pointer arg to INDEX_ERRORS (int64[4], zero before the run): on a bad index
it stores 1, the value, the size and the check's number (its position in
TritonKernel.index_checks) there, and reads a clamped index instead. The
wrapper gives each checking kernel its own four slots, copies them back after
the last launch and reports the first one set:
"<handle>: index V out of range [0, N) for <what>".
"""


@dataclass
class TritonContext:
    """|buffer_dtypes|: every buffer's element dtype (graph_buffer_dtypes).
    |size_symbols|: the graph's size symbols; a kernel whose sizes use one
    takes it as a "size" arg named after it (str(symbol), e.g. "s0")."""

    buffer_dtypes: Mapping[str, torch.dtype]
    size_symbols: Sequence[sympy.Symbol] = ()


@dataclass
class TritonEpilogue:
    """A pointwise LoopKernel run by a GEMM or convolution template on each
    output tile instead of reading the product back ([Note: epilogue fusion]
    in aot/scheduler/epilogue.py; loop_kernel.generate_epilogue makes it).

    The template computes a tile of its product P (float32 accumulator), then
    emits body(index, value, mask): Triton statements (no indentation) that
    compute the epilogue for the tile's elements, whose flat, contiguous
    index in P is the int tensor |index|, whose value is the float32 tensor
    |value| and which exist where the bool tensor |mask| holds, and store the
    epilogue's outputs. Loads of P inside it read |value| (rounded to P's
    dtype first, as if stored and loaded). When |shares_product| the
    epilogue's output takes P's memory (ExternCall.epilogue_shares): the
    template must not store P itself; otherwise it stores P as usual, too.
    |args| are parameters the body uses, appended to the template's own
    (their names start with "epi_"); |helpers| is module-level source the
    body calls (@triton.jit functions), placed before the template's kernel.
    |index_checks| as TritonKernel.index_checks; a non-empty list means
    |args| holds the INDEX_ERRORS pointer."""

    args: list[TritonArg]
    body: Callable[[str, str, str], list[str]]
    shares_product: bool = False
    helpers: str = ""
    index_checks: list[str] = field(default_factory=list)
