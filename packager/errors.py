"""The one exception type the packager raises for a bad or unsupported package."""

from __future__ import annotations


class PackageError(ValueError):
    """A package that cannot be read: not a zip, not aotc, an unsupported version, or corrupt.

    A ValueError, so callers that already catch bad-argument errors catch this too.
    Argument errors from PackageWriter are plain ValueErrors naming the field at fault.
    """
