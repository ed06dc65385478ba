"""Build: the model library's CMake project, compiled with CMake + Ninja."""

from .builder import BuildError, build_library, find_cmake, find_ninja
from .cmake_project import source_tree, write_source_tree
from .progress import Progress

__all__ = [
    "BuildError",
    "Progress",
    "build_library",
    "find_cmake",
    "find_ninja",
    "source_tree",
    "write_source_tree",
]
