"""A minimal NPY (numpy's .npy) writer and reader, without numpy.

Writes format version 1.0, C order, little-endian, with the header padded so that the
array data starts 64 bytes after the start of the file: inside a 64-byte aligned zip
entry the data is then aligned too. Reads versions 1.0, 2.0 and 3.0.
"""

from __future__ import annotations

import ast
import struct
from dataclasses import dataclass

MAGIC = b"\x93NUMPY"
HEADER_ALIGN = 64


@dataclass(frozen=True)
class NpyHeader:
    descr: str
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int  # where the array data starts within the NPY bytes


def header(descr: str, shape: tuple[int, ...] | list[int]) -> bytes:
    """The NPY v1.0 header (magic through padding) for a C-order array."""
    dims = ", ".join(str(int(d)) for d in shape)
    if len(shape) == 1:
        dims += ","
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}"
    prefix = len(MAGIC) + 2 + 2  # magic, version, header length
    pad = -(prefix + len(text) + 1) % HEADER_ALIGN
    body = (text + " " * pad + "\n").encode("latin1")
    if len(body) > 0xFFFF:
        raise ValueError("NPY header too long for version 1.0")
    return MAGIC + b"\x01\x00" + struct.pack("<H", len(body)) + body


def read(data: bytes | memoryview) -> tuple[NpyHeader, memoryview]:
    """(header, array bytes) of NPY |data|; ValueError when it is malformed."""
    view = memoryview(data).cast("B")
    if view.nbytes < 10 or bytes(view[:6]) != MAGIC:
        raise ValueError("not NPY data (bad magic)")
    major = view[6]
    if major == 1:
        (n,) = struct.unpack_from("<H", view, 8)
        start = 10
    elif major in (2, 3):
        if view.nbytes < 12:
            raise ValueError("truncated NPY header")
        (n,) = struct.unpack_from("<I", view, 8)
        start = 12
    else:
        raise ValueError(f"unsupported NPY version {major}.{view[7]}")
    if start + n > view.nbytes:
        raise ValueError("truncated NPY header")
    encoding = "utf-8" if major == 3 else "latin1"
    text = bytes(view[start : start + n]).decode(encoding)
    try:
        fields = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"bad NPY header: {text.strip()!r}") from e
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"bad NPY header: {text.strip()!r}")
    descr, fortran, shape = fields["descr"], fields["fortran_order"], fields["shape"]
    if (
        not isinstance(descr, str)
        or not isinstance(fortran, bool)
        or not isinstance(shape, tuple)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ValueError(f"bad NPY header: {text.strip()!r}")
    hdr = NpyHeader(descr, fortran, shape, start + n)
    return hdr, view[start + n :]
