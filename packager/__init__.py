"""The aotc package format (.pt2): write, read, verify, inspect. docs/FORMAT.md.

Imports nothing heavy: no torch ever, numpy only when handed numpy arrays, zstandard
only when (de)compressing. `aotc inspect` relies on this to stay fast.
"""

from .errors import PackageError
from .inspection import (
    EntryInfo,
    KernelCall,
    UnknownKernelError,
    format_inspection,
    format_kernel,
    inspect_kernel,
    inspect_package,
    list_entries,
    parse_kernel_information,
)
from .manifest import FORMAT_VERSION
from .reader import ModelInfo, Package, Samples, read_package
from .records import Constant, Sample
from .verify import verify_package
from .version import AOTC_VERSION
from .writer import PackageWriter

__all__ = [
    "AOTC_VERSION",
    "FORMAT_VERSION",
    "Constant",
    "EntryInfo",
    "KernelCall",
    "ModelInfo",
    "Package",
    "PackageError",
    "PackageWriter",
    "Sample",
    "Samples",
    "UnknownKernelError",
    "format_inspection",
    "format_kernel",
    "inspect_kernel",
    "inspect_package",
    "list_entries",
    "parse_kernel_information",
    "read_package",
    "verify_package",
]
