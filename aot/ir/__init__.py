"""aotc's loop-level IR: buffers with symbolic layouts, and compute nodes whose
bodies are backend-neutral functions written against an ops handler."""

from .nodes import (
    Buffer,
    BufferKind,
    ComputedBuffer,
    ExternKernel,
    GenericView,
    Layout,
    Loader,
    Loops,
    Pointwise,
    Reduction,
    ReinterpretView,
    TensorValue,
    WelfordReduction,
)
from .ops import OpsHandler, PrintHandler
from .symbols import FloorDiv, ModularIndexing, index_vars, reduction_vars

__all__ = [
    "Buffer",
    "BufferKind",
    "ComputedBuffer",
    "ExternKernel",
    "FloorDiv",
    "GenericView",
    "Layout",
    "Loader",
    "Loops",
    "ModularIndexing",
    "OpsHandler",
    "Pointwise",
    "PrintHandler",
    "Reduction",
    "WelfordReduction",
    "ReinterpretView",
    "TensorValue",
    "index_vars",
    "reduction_vars",
]
