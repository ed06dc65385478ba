"""The C++ wrapper (model.cc) implementing the model ABI around the kernels."""

from .buffer_table import assign_buffer_ids, buffer_slots
from .cpp_wrapper import debug_handles, generate_sources, generate_wrapper
from .sizes import SizePrinter, make_size_expr, size_text

__all__ = [
    "SizePrinter",
    "assign_buffer_ids",
    "buffer_slots",
    "debug_handles",
    "generate_sources",
    "generate_wrapper",
    "make_size_expr",
    "size_text",
]
