"""The aotc package format (.pt2): write, read, verify, inspect. docs/FORMAT.md.

Imports nothing heavy: no torch ever, numpy only when handed numpy arrays, zstandard
only when (de)compressing. `aotc inspect` relies on this to stay fast.
"""

from .errors import PackageError
from .inspection import EntryInfo, format_inspection, inspect_package, list_entries
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
    "ModelInfo",
    "Package",
    "PackageError",
    "PackageWriter",
    "Sample",
    "Samples",
    "format_inspection",
    "inspect_package",
    "list_entries",
    "read_package",
    "verify_package",
]
