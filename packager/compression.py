"""zstd for weights. zstandard is imported on first use, so reading a package's
structure (inspect, verify of uncompressed packages) never loads it."""

from __future__ import annotations

from .errors import PackageError

ZSTD_LEVEL = 3
ZSTD_SUFFIX = ".zst"


def compress(data: bytes | memoryview) -> bytes:
    """One zstd frame that records the content size and a content checksum."""
    import zstandard

    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=True)
    return cctx.compress(data)


def frame_content_size(data: bytes | memoryview) -> int | None:
    """The decompressed size a zstd frame header declares; None if unknown or malformed."""
    import zstandard

    try:
        size = zstandard.frame_content_size(bytes(data[:18]))
    except zstandard.ZstdError:
        return None
    return None if size < 0 else size


def decompress(data: bytes | memoryview, nbytes: int, what: str) -> bytes:
    """Decompresses one frame that must hold exactly |nbytes| bytes."""
    import zstandard

    try:
        out = zstandard.ZstdDecompressor().decompress(data, max_output_size=nbytes)
    except zstandard.ZstdError as e:
        raise PackageError(f"{what}: bad zstd data: {e}") from e
    if len(out) != nbytes:
        raise PackageError(f"{what}: decompressed to {len(out)} bytes, manifest says {nbytes}")
    return out
