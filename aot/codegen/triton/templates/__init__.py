"""Triton templates for extern kernels, by ExternKernel.kind. Each family
module defines TEMPLATES: kind -> fn(call, ctx, epilogue) -> [TritonKernel],
where |call| is the scheduler's ExternCall (its node's inputs are buffers or
strided views; its outputs contiguous buffers), |ctx| a TritonContext and
|epilogue| a TritonEpilogue or None (only kinds in
aot/scheduler/epilogue.py's EPILOGUE_KINDS get one). Launch names derive from
call.name ("extern2", "extern2_pass1") so they are unique in the model."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..context import TritonContext, TritonEpilogue
from ..launch import TritonKernel

Template = Callable[..., list[TritonKernel]]
_FAMILIES = ("gemm", "conv", "attention", "pool", "scan", "sort", "scatter")


def _collect() -> dict[str, Template]:
    table: dict[str, Template] = {}
    for family in _FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        for kind, fn in module.TEMPLATES.items():
            if kind in table:
                raise ValueError(f"extern kind {kind!r} has two Triton templates")
            table[kind] = fn
    return table


TEMPLATES: dict[str, Template] = _collect()

__all__ = ["TEMPLATES", "Template", "TritonContext", "TritonEpilogue"]
