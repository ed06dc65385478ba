"""A zip writer for STORED entries whose data starts on an aligned file offset.

[Note: aligned entries] Python's zipfile cannot choose where an entry's data starts.
The runtime maps weights in place from an mmap, so each entry's data must begin at a
multiple of ALIGNMENT. We pad the local header's extra field with one private field
(id PAD_EXTRA_ID, zero bytes), which keeps the extra field a well-formed list of
(id, size, data) records that every reader skips. The central directory carries no
padding. ZIP64 extra fields and the ZIP64 end records are written whenever a size,
offset or count passes the 32-bit limits (or always, with force_zip64).

Timestamps are fixed (1980-01-01 00:00), so equal inputs give equal bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from .names import ALIGNMENT

Buffer = bytes | bytearray | memoryview

PAD_EXTRA_ID = 0xA0C0  # private extra-field id used for alignment padding
ZIP64_EXTRA_ID = 0x0001

LOCAL_SIG = 0x04034B50
CENTRAL_SIG = 0x02014B50
EOCD_SIG = 0x06054B50
ZIP64_EOCD_SIG = 0x06064B50
ZIP64_LOCATOR_SIG = 0x07064B50

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
EOCD = struct.Struct("<IHHHHIIH")  # 22 bytes
ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
ZIP64_LOCATOR = struct.Struct("<IIQI")  # 20 bytes

U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF

VERSION_DEFAULT = 20  # 2.0: plain STORED entries
VERSION_ZIP64 = 45  # 4.5: ZIP64
MADE_BY_UNIX = 3 << 8
FLAG_UTF8 = 0x0800
DOS_TIME = 0
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
EXTERNAL_ATTR = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--


@dataclass(frozen=True)
class WrittenEntry:
    name: str
    header_offset: int
    data_offset: int
    size: int
    crc32: int
    zip64_sizes: bool


def crc32_of(parts: Sequence[Buffer]) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


def _extra(field_id: int, payload: bytes) -> bytes:
    return struct.pack("<HH", field_id, len(payload)) + payload


def _padding(start: int, alignment: int) -> bytes:
    """An extra field that moves |start| (where data would begin) to the next aligned offset."""
    pad = -start % alignment
    if pad == 0:
        return b""
    while pad < 4:  # the smallest extra field is its 4-byte header
        pad += alignment
    return _extra(PAD_EXTRA_ID, bytes(pad - 4))


class AlignedZipWriter:
    """Writes entries to |out|, then the central directory.

    Offsets are counted from |out|'s position when the writer is made (normally 0;
    tests start past 4 GiB in a sparse file to exercise ZIP64 offsets).

    Tests may pass alignment=1 to produce an unaligned (invalid) package on purpose.
    """

    def __init__(
        self, out: BinaryIO, *, alignment: int = ALIGNMENT, force_zip64: bool = False
    ) -> None:
        self._out = out
        self._alignment = alignment
        self._force_zip64 = force_zip64
        self._pos = out.tell()
        self._entries: list[WrittenEntry] = []
        self._names: set[str] = set()
        self._finished = False

    @property
    def entries(self) -> list[WrittenEntry]:
        return list(self._entries)

    def add(self, name: str, parts: Sequence[Buffer]) -> WrittenEntry:
        """Writes one STORED entry whose data is the concatenation of |parts|."""
        if self._finished:
            raise RuntimeError("zip already finished")
        if name in self._names:
            raise ValueError(f"duplicate zip entry {name!r}")
        encoded = name.encode("utf-8")
        if len(encoded) > U16_MAX:
            raise ValueError(f"zip entry name too long: {name[:80]!r}...")
        views = [memoryview(p).cast("B") for p in parts]
        size = sum(v.nbytes for v in views)
        crc = crc32_of(views)
        zip64_sizes = self._force_zip64 or size >= U32_MAX
        flags = FLAG_UTF8 if not encoded.isascii() else 0
        extra = _extra(ZIP64_EXTRA_ID, struct.pack("<QQ", size, size)) if zip64_sizes else b""
        header_offset = self._pos
        start = header_offset + LOCAL_HEADER.size + len(encoded) + len(extra)
        extra += _padding(start, self._alignment)
        if len(extra) > U16_MAX:
            raise ValueError("extra field too long")  # cannot happen for alignment <= 65000
        size32 = U32_MAX if zip64_sizes else size
        header = LOCAL_HEADER.pack(
            LOCAL_SIG,
            VERSION_ZIP64 if zip64_sizes else VERSION_DEFAULT,
            flags,
            0,  # method: STORED
            DOS_TIME,
            DOS_DATE,
            crc,
            size32,
            size32,
            len(encoded),
            len(extra),
        )
        self._write(header + encoded + extra)
        data_offset = self._pos
        for v in views:
            self._write(v)
        entry = WrittenEntry(name, header_offset, data_offset, size, crc, zip64_sizes)
        self._entries.append(entry)
        self._names.add(name)
        return entry

    def finish(self) -> None:
        """Writes the central directory and the end records. The output stays open."""
        if self._finished:
            raise RuntimeError("zip already finished")
        self._finished = True
        cd_offset = self._pos
        for e in self._entries:
            self._write(self._central_header(e))
        cd_size = self._pos - cd_offset
        count = len(self._entries)
        zip64 = self._force_zip64 or count >= U16_MAX or cd_size >= U32_MAX or cd_offset >= U32_MAX
        if zip64:
            zip64_eocd_offset = self._pos
            self._write(
                ZIP64_EOCD.pack(
                    ZIP64_EOCD_SIG,
                    ZIP64_EOCD.size - 12,  # size of the record after this field
                    MADE_BY_UNIX | VERSION_ZIP64,
                    VERSION_ZIP64,
                    0,  # this disk
                    0,  # disk where the central directory starts
                    count,
                    count,
                    cd_size,
                    cd_offset,
                )
            )
            self._write(ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, zip64_eocd_offset, 1))
        self._write(
            EOCD.pack(
                EOCD_SIG,
                0,
                0,
                U16_MAX if zip64 else count,
                U16_MAX if zip64 else count,
                U32_MAX if zip64 else cd_size,
                U32_MAX if zip64 else cd_offset,
                0,  # comment length
            )
        )

    def _central_header(self, e: WrittenEntry) -> bytes:
        encoded = e.name.encode("utf-8")
        zip64_offset = self._force_zip64 or e.header_offset >= U32_MAX
        fields: list[int] = []
        if e.zip64_sizes:
            fields += [e.size, e.size]  # uncompressed, then compressed, as the spec orders them
        if zip64_offset:
            fields.append(e.header_offset)
        extra = _extra(ZIP64_EXTRA_ID, struct.pack(f"<{len(fields)}Q", *fields)) if fields else b""
        zip64 = e.zip64_sizes or zip64_offset
        size32 = U32_MAX if e.zip64_sizes else e.size
        return (
            CENTRAL_HEADER.pack(
                CENTRAL_SIG,
                MADE_BY_UNIX | (VERSION_ZIP64 if zip64 else VERSION_DEFAULT),
                VERSION_ZIP64 if zip64 else VERSION_DEFAULT,
                FLAG_UTF8 if not encoded.isascii() else 0,
                0,  # method: STORED
                DOS_TIME,
                DOS_DATE,
                e.crc32,
                size32,
                size32,
                len(encoded),
                len(extra),
                0,  # comment length
                0,  # disk number start
                0,  # internal attributes
                EXTERNAL_ATTR,
                U32_MAX if zip64_offset else e.header_offset,
            )
            + encoded
            + extra
        )

    def _write(self, data: Buffer) -> None:
        n = self._out.write(data)
        size = memoryview(data).nbytes
        if n is not None and n != size:
            raise OSError(f"short write: {n} of {size} bytes")
        self._pos += size
