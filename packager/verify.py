"""verify_package: every check the format defines, as a list of problems.

Zip structure (STORED, alignment, local vs central headers, overlaps, CRC-32s, safe
names), layout (one root, archive_format, archive_version), each manifest (version,
schema, model name) and its entries (present, size and sha256 as listed, nothing
unlisted in the model's folders), and the contents the manifest describes (weight
sizes, zstd frame sizes, NPY headers). Never raises for a bad package.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import zlib
from typing import Any

from . import compression, manifest, npy
from .dtypes import DTYPES, numel
from .errors import PackageError
from .names import ALIGNMENT, ARCHIVE_FORMAT, ARCHIVE_VERSION, Layout, path_problem
from .reader import find_root, model_names
from .zipreader import ZipEntry, ZipIndex

CHUNK = 16 << 20


class _Digests:
    """CRC-32 and sha256 of each entry's stored bytes, read once, in chunks."""

    def __init__(self, index: ZipIndex) -> None:
        self.index = index
        self._cache: dict[str, tuple[int, str]] = {}

    def get(self, e: ZipEntry) -> tuple[int, str]:
        if e.name not in self._cache:
            crc, sha = 0, hashlib.sha256()
            with open(self.index.path, "rb") as f:
                f.seek(e.data_offset)
                left = e.compressed_size
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        break
                    crc = zlib.crc32(chunk, crc)
                    sha.update(chunk)
                    left -= len(chunk)
            self._cache[e.name] = (crc, sha.hexdigest())
        return self._cache[e.name]


def _check_entry(e: ZipEntry, file_size: int, digests: _Digests) -> list[str]:
    where = f"entry {e.name!r}"
    out = []
    problem = path_problem(e.name)
    if problem:
        out.append(f"{where}: unsafe name: {problem}")
    if e.method != 0:
        out.append(f"{where}: compression method {e.method}; entries must be STORED (0)")
    if e.flags & 0x1:
        out.append(f"{where}: encrypted")
    if e.flags & 0x8:
        out.append(f"{where}: uses a data descriptor; sizes and CRC belong in the headers")
    if e.compressed_size != e.size:
        out.append(f"{where}: stored size {e.compressed_size} != size {e.size}")
    local = e.local
    if (local.name, local.method, local.crc32, local.size, local.compressed_size) != (
        e.name,
        e.method,
        e.crc32,
        e.size,
        e.compressed_size,
    ):
        out.append(f"{where}: local header disagrees with the central directory")
    if e.data_offset % ALIGNMENT:
        out.append(f"{where}: data offset {e.data_offset} is not a multiple of {ALIGNMENT}")
    if e.data_offset + e.compressed_size > file_size:
        out.append(f"{where}: data runs past the end of the file")
    elif e.method == 0:
        crc, _ = digests.get(e)
        if crc != e.crc32:
            out.append(f"{where}: CRC-32 mismatch (stored {e.crc32:08x}, data {crc:08x})")
    return out


def _check_zip(index: ZipIndex, digests: _Digests) -> list[str]:
    out = []
    seen: set[str] = set()
    for e in index.entries:
        if e.name in seen:
            out.append(f"entry {e.name!r}: duplicate name")
        seen.add(e.name)
        out += _check_entry(e, index.file_size, digests)
    ordered = sorted(index.entries, key=lambda e: e.header_offset)
    for a, b in itertools.pairwise(ordered):
        if a.data_offset + a.compressed_size > b.header_offset:
            out.append(f"entry {a.name!r}: data overlaps entry {b.name!r}")
    return out


def _check_archive_files(index: ZipIndex, layout: Layout) -> list[str]:
    out = []
    for path, want in (
        (layout.archive_format, ARCHIVE_FORMAT),
        (layout.archive_version, ARCHIVE_VERSION),
    ):
        e = index.by_name.get(path)
        if e is None:
            out.append(f"missing entry {path!r}")
            continue
        got = index.read(e).decode("utf-8", "replace").rstrip("\r\n ")
        if got != want:
            out.append(f"entry {path!r}: content {got!r}, expected {want!r}")
    return out


def _check_contents(m: dict[str, Any], layout: Layout, index: ZipIndex, where: str) -> list[str]:
    """Weights and samples hold what the manifest says (sizes, zstd frames, NPY headers)."""
    out = []
    model = m["model"]
    for i, c in enumerate(m["constants"]):
        e = index.by_name.get(layout.weights_dir(model) + c["entry"])
        if e is None:
            continue  # reported as a missing entry
        if c["compression"] == "none" and e.size != c["nbytes"]:
            out.append(
                f"{where}: constants[{i}] {c['name']!r}: entry has {e.size} bytes, "
                f"nbytes is {c['nbytes']}"
            )
        if c["compression"] == "zstd":
            size = compression.frame_content_size(index.read(e, limit=18))
            if size != c["nbytes"]:
                out.append(
                    f"{where}: constants[{i}] {c['name']!r}: zstd frame holds {size} "
                    f"bytes, nbytes is {c['nbytes']}"
                )
    for side in ("inputs", "outputs"):
        for i, rec in enumerate(m["samples"][side]):
            e = index.by_name.get(layout.samples_dir(model) + rec["entry"])
            if e is None:
                continue
            f = f"{where}: samples.{side}[{i}]"
            try:
                header, data = npy.read(index.read(e))
            except ValueError as err:
                out.append(f"{f}: {err}")
                continue
            dtype = DTYPES[rec["dtype"]]
            if header.descr != dtype.npy_descr or header.fortran_order:
                out.append(
                    f"{f}: NPY descr {header.descr!r} (fortran_order "
                    f"{header.fortran_order}) for dtype {dtype.name}"
                )
            if "shape" in rec and list(header.shape) != rec["shape"]:
                out.append(f"{f}: NPY shape {list(header.shape)} != manifest {rec['shape']}")
            if data.nbytes != numel(header.shape) * dtype.itemsize:
                out.append(f"{f}: NPY data has {data.nbytes} bytes for shape {header.shape}")
    return out


def _check_model(name: str, layout: Layout, index: ZipIndex, digests: _Digests) -> list[str]:
    where = f"model {name!r}"
    try:
        m = manifest.decode(index.read(index.by_name[layout.manifest(name)]))
    except ValueError as e:
        return [f"{where}: {e}"]
    problems = manifest.validate(m)
    if problems:
        return [f"{where}: manifest: {p}" for p in problems]
    out = []
    if m["model"] != name:
        out.append(f"{where}: manifest names model {m['model']!r}")
        return out
    folders = layout.model_dirs(name)
    listed = m["entries"]
    for path, rec in listed.items():
        if not path.startswith(folders) or path == layout.manifest(name):
            out.append(f"{where}: entries lists {path!r}, which is not one of its files")
            continue
        e = index.by_name.get(path)
        if e is None:
            out.append(f"{where}: missing entry {path!r}")
            continue
        if e.size != rec["size"]:
            out.append(f"{where}: entry {path!r} has {e.size} bytes, manifest says {rec['size']}")
        elif digests.get(e)[1] != rec["sha256"]:
            out.append(f"{where}: entry {path!r}: sha256 mismatch")
    for path, what in manifest.references(m, layout).items():
        if path not in listed:
            out.append(f"{where}: {what} refers to {path!r}, which entries does not list")
    for e in index.entries:
        if e.name.startswith(folders) and e.name != layout.manifest(name) and e.name not in listed:
            out.append(f"{where}: stray entry {e.name!r} not listed in the manifest")
    return out + _check_contents(m, layout, index, where)


def verify_package(path: str | os.PathLike[str]) -> list[str]:
    """Every problem found in the package at |path|; [] when it is valid."""
    try:
        index = ZipIndex(path)
    except (PackageError, OSError) as e:
        return [str(e)]
    digests = _Digests(index)
    out = _check_zip(index, digests)
    try:
        layout = Layout(find_root([e.name for e in index.entries]))
    except PackageError as e:
        return out + [str(e)]
    try:
        out += _check_archive_files(index, layout)
    except PackageError as e:  # unreadable entry data, already reported above
        out.append(str(e))
    models = model_names([e.name for e in index.entries], layout)
    if not models:
        out.append(f"no model: no {layout.root}/data/aotc/<model>/manifest.json")
    for name in models:
        try:
            out += _check_model(name, layout, index, digests)
        except PackageError as e:
            out.append(f"model {name!r}: {e}")
    known = tuple(d for name in models for d in layout.model_dirs(name))
    archive_files = (layout.archive_format, layout.archive_version)
    for e in index.entries:
        if e.name not in archive_files and not (known and e.name.startswith(known)):
            out.append(f"stray entry {e.name!r}: not part of any model")
    return out
