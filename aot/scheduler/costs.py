"""The cost table: each kernel call's bytes and FLOPs as the package manifest
stores them (``costs``, docs/FORMAT.md), for `aotc inspect` and benchmarks.

One record per kernel call in run order, then one per write-back copy
(a mutation the wrapper copies after the last kernel). Sizes are integers,
or expression strings over the size symbols of a dynamic model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy

from ..ir.nodes import Reduction
from .schedule import ExternCall, LoopKernel, Schedule

# Extern kinds generated from templates (GEMM, convolution, attention); every
# other extern kernel is hand-written.
TEMPLATE_KINDS = frozenset({"mm", "addmm", "bmm", "convolution", "sdpa"})


def kernel_kind(kernel: LoopKernel | ExternCall) -> str:
    """pointwise | reduction | template | extern."""
    if isinstance(kernel, ExternCall):
        return "template" if kernel.node.kind in TEMPLATE_KINDS else "extern"
    if any(isinstance(n.data, Reduction) for n in kernel.nodes):
        return "reduction"
    return "pointwise"


def json_size(expr: sympy.Expr | int) -> int | str:
    """An integer, or the expression as text when it has size symbols."""
    expr = sympy.sympify(expr)
    return int(expr) if expr.is_Integer else str(expr)


def cost_records(schedule: Schedule, handles: Sequence[str]) -> list[dict[str, Any]]:
    """The manifest's ``costs``: |handles|[i] is the debug handle of kernel i."""
    records = [
        {
            "debug_handle": handle,
            "kernel": kernel.name,
            "kind": kernel_kind(kernel),
            "bytes_read": json_size(kernel.bytes_read),
            "bytes_written": json_size(kernel.bytes_written),
            "flops": json_size(kernel.flops),
        }
        for kernel, handle in zip(schedule.kernels, handles, strict=True)
    ]
    for k, copy in enumerate(schedule.writebacks):
        records.append(
            {
                "debug_handle": f"writeback{k}:0",
                "kernel": f"writeback{k}",
                "kind": "copy",
                "what": f"{copy.what} <- {copy.buffer}",
                "bytes_read": json_size(copy.nbytes),
                "bytes_written": json_size(copy.nbytes),
                "flops": 0,
            }
        )
    return records
