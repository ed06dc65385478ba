"""Reads a zip's central directory and local headers, ZIP64 included, without zipfile.

Python's zipfile hides the one number the format is about (where an entry's data
starts), so the reader, verifier and listing parse the structure themselves. Only
headers are read here; entry data is read on demand.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from .errors import PackageError
from .zipwriter import (
    CENTRAL_HEADER,
    CENTRAL_SIG,
    EOCD,
    EOCD_SIG,
    LOCAL_HEADER,
    LOCAL_SIG,
    U32_MAX,
    ZIP64_EOCD,
    ZIP64_EOCD_SIG,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIG,
)

MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class LocalHeader:
    flags: int
    method: int
    crc32: int
    compressed_size: int  # ZIP64 values resolved
    size: int
    name: str
    extra: bytes


@dataclass(frozen=True)
class ZipEntry:
    """One central-directory record plus what its local header says."""

    name: str
    flags: int
    method: int
    crc32: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    local: LocalHeader


def parse_extra(extra: bytes) -> dict[int, bytes] | None:
    """The (id -> payload) records of an extra field; None when it is malformed."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            return None
        field_id, n = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + n > len(extra):
            return None
        fields[field_id] = extra[pos + 4 : pos + 4 + n]
        pos += 4 + n
    return fields


def _resolve_zip64(where: str, extra: bytes, values: list[int], positions: list[int]) -> list[int]:
    """Replaces each values[i] (i in |positions|) equal to its 32-bit max with ZIP64 data."""
    wanted = [i for i in positions if values[i] == U32_MAX]
    if not wanted:
        return values
    fields = parse_extra(extra)
    if fields is None:
        raise PackageError(f"{where}: malformed extra field")
    payload = fields.get(ZIP64_EXTRA_ID)
    if payload is None or len(payload) < 8 * len(wanted):
        raise PackageError(f"{where}: 32-bit field is 0xFFFFFFFF but no ZIP64 extra field")
    out = list(values)
    for k, i in enumerate(wanted):
        (out[i],) = struct.unpack_from("<Q", payload, 8 * k)
    return out


def _read_at(f: BinaryIO, offset: int, n: int, what: str) -> bytes:
    try:
        f.seek(offset)
    except (OverflowError, ValueError) as e:
        raise PackageError(f"{what}: offset {offset} out of range") from e
    data = f.read(n)
    if len(data) != n:
        raise PackageError(f"truncated file: {what} at offset {offset} runs past the end")
    return data


def _find_eocd(f: BinaryIO, file_size: int) -> int:
    tail_len = min(file_size, EOCD.size + MAX_COMMENT)
    tail = _read_at(f, file_size - tail_len, tail_len, "end of central directory")
    pos = len(tail) - EOCD.size
    while pos >= 0:
        pos = tail.rfind(struct.pack("<I", EOCD_SIG), 0, pos + 4)
        if pos < 0:
            break
        (comment_len,) = struct.unpack_from("<H", tail, pos + 20)
        if pos + EOCD.size + comment_len == len(tail):
            return file_size - tail_len + pos
        pos -= 1
    raise PackageError("not a zip file: no end of central directory record")


def _directory_location(f: BinaryIO, file_size: int) -> tuple[int, int, int]:
    """(entry count, central directory size, central directory offset)."""
    eocd_offset = _find_eocd(f, file_size)
    _, disk, cd_disk, n_disk, count, cd_size, cd_offset, _ = EOCD.unpack(
        _read_at(f, eocd_offset, EOCD.size, "end of central directory")
    )
    if disk != 0 or cd_disk != 0 or n_disk != count:
        raise PackageError("multi-disk zip archives are not supported")
    locator_offset = eocd_offset - ZIP64_LOCATOR.size
    if locator_offset >= 0:
        sig, _, z64_offset, _ = ZIP64_LOCATOR.unpack(
            _read_at(f, locator_offset, ZIP64_LOCATOR.size, "zip64 locator")
        )
        if sig == ZIP64_LOCATOR_SIG:
            if z64_offset + ZIP64_EOCD.size > locator_offset:
                raise PackageError("zip64 end of central directory record out of bounds")
            rec = ZIP64_EOCD.unpack(_read_at(f, z64_offset, ZIP64_EOCD.size, "zip64 record"))
            if rec[0] != ZIP64_EOCD_SIG:
                raise PackageError("bad zip64 end of central directory signature")
            return rec[7], rec[8], rec[9]
    return count, cd_size, cd_offset


def _read_local(f: BinaryIO, name: str, header_offset: int) -> tuple[LocalHeader, int]:
    fixed = _read_at(f, header_offset, LOCAL_HEADER.size, f"local header of {name!r}")
    (sig, _, flags, method, _, _, crc, csize, usize, n_name, n_extra) = LOCAL_HEADER.unpack(fixed)
    if sig != LOCAL_SIG:
        raise PackageError(f"entry {name!r}: bad local header signature at offset {header_offset}")
    rest = _read_at(f, header_offset + LOCAL_HEADER.size, n_name + n_extra, f"header of {name!r}")
    raw_name, extra = rest[:n_name], rest[n_name:]
    where = f"local header of {name!r}"
    usize, csize = _resolve_zip64(where, extra, [usize, csize], [0, 1])
    local = LocalHeader(
        flags, method, crc, csize, usize, raw_name.decode("utf-8", "replace"), extra
    )
    return local, header_offset + LOCAL_HEADER.size + n_name + n_extra


def read_entries(f: BinaryIO, file_size: int) -> list[ZipEntry]:
    """Every entry of the zip open as |f|, in central directory order.

    Raises PackageError when the structure cannot be parsed. Does not read data.
    """
    count, cd_size, cd_offset = _directory_location(f, file_size)
    if cd_offset + cd_size > file_size:
        raise PackageError("central directory runs past the end of the file")
    cd = _read_at(f, cd_offset, cd_size, "central directory")
    entries: list[ZipEntry] = []
    pos = 0
    for index in range(count):
        if pos + CENTRAL_HEADER.size > len(cd):
            raise PackageError(f"central directory truncated at entry {index}")
        fields = CENTRAL_HEADER.unpack_from(cd, pos)
        (sig, _, _, flags, method, _, _, crc, csize, usize, n_name, n_extra, n_comment) = fields[
            :13
        ]
        header_offset = fields[16]
        if sig != CENTRAL_SIG:
            raise PackageError(f"bad central directory signature at entry {index}")
        start = pos + CENTRAL_HEADER.size
        end = start + n_name + n_extra + n_comment
        if end > len(cd):
            raise PackageError(f"central directory truncated at entry {index}")
        raw_name = cd[start : start + n_name]
        extra = cd[start + n_name : start + n_name + n_extra]
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PackageError(f"entry {index}: name is not UTF-8") from e
        usize, csize, header_offset = _resolve_zip64(
            f"central header of {name!r}", extra, [usize, csize, header_offset], [0, 1, 2]
        )
        local, data_offset = _read_local(f, name, header_offset)
        entries.append(
            ZipEntry(name, flags, method, crc, csize, usize, header_offset, data_offset, local)
        )
        pos = end
    return entries


class ZipIndex:
    """The entries of one zip file, by name, with readers for their stored bytes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                self.file_size = os.fstat(f.fileno()).st_size
                self.entries = read_entries(f, self.file_size)
        except (OSError, struct.error) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise PackageError(f"{self.path}: cannot read zip: {e}") from e
        self.by_name = {e.name: e for e in self.entries}

    def read(self, entry: ZipEntry, limit: int | None = None) -> bytes:
        """The stored bytes of |entry| (STORED: its contents), or the first |limit| of them."""
        if entry.data_offset + entry.compressed_size > self.file_size:
            raise PackageError(f"entry {entry.name!r}: data runs past the end of the file")
        n = entry.compressed_size if limit is None else min(limit, entry.compressed_size)
        with open(self.path, "rb") as f:
            return _read_at(f, entry.data_offset, n, repr(entry.name))
