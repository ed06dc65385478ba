"""read_package: opens a .pt2, checks what a reader must refuse, and reads entries.

Reading checks the layout, archive_format, archive_version, each manifest's version
and schema, and the CRC-32 of every entry it reads. Full checks (sha256 of every
entry, alignment, stray entries) are verify_package's job.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import compression, manifest, npy
from .errors import PackageError
from .names import ARCHIVE_FORMAT, ARCHIVE_VERSION, MANIFEST, Layout
from .zipreader import ZipEntry, ZipIndex

TensorBytes = tuple[str, tuple[int, ...], bytes]  # (dtype, shape, raw bytes)


class Samples(NamedTuple):
    inputs: list[TensorBytes]
    outputs: list[TensorBytes]


def find_root(names: list[str]) -> str:
    """The one top-level folder every entry lives under; PackageError otherwise."""
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    loose = [n for n in names if "/" not in n]
    if loose:
        raise PackageError(f"entry {loose[0]!r} is not under a root folder")
    if len(roots) != 1:
        found = ", ".join(sorted(roots)[:5]) or "none"
        raise PackageError(f"expected all entries under one root folder, found: {found}")
    return roots.pop()


def model_names(names: list[str], layout: Layout) -> list[str]:
    """Models of the package: the folders data/aotc/<model>/ that hold a manifest.json."""
    pattern = re.compile(re.escape(f"{layout.root}/data/aotc/") + r"([^/]+)/" + re.escape(MANIFEST))
    return [m.group(1) for n in names if (m := pattern.fullmatch(n))]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    manifest: dict[str, Any]
    layout: Layout

    @property
    def target(self) -> dict[str, Any]:
        return self.manifest["target"]

    @property
    def abi(self) -> dict[str, Any]:
        return self.manifest["abi"]

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self.manifest["outputs"]

    @property
    def constants(self) -> list[dict[str, Any]]:
        return self.manifest["constants"]

    @property
    def kernels(self) -> list[dict[str, Any]]:
        return self.manifest["kernels"]

    @property
    def library_path(self) -> str:
        return self.layout.model_dir(self.name) + self.manifest["library"]

    def kernel_path(self, kernel: dict[str, Any]) -> str:
        return self.layout.kernels_dir(self.name) + kernel["entry"]

    def constant(self, name: str) -> dict[str, Any]:
        for c in self.constants:
            if c["name"] == name:
                return c
        raise KeyError(f"model {self.name!r} has no constant {name!r}")

    def constant_path(self, constant: dict[str, Any]) -> str:
        return self.layout.weights_dir(self.name) + constant["entry"]


class Package:
    """An opened package. Entries are read from the file on demand."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.index = ZipIndex(path)
        self.path = self.index.path
        self.root = find_root([e.name for e in self.index.entries])
        self.layout = Layout(self.root)
        self._check_archive_files()
        self.models: dict[str, ModelInfo] = {}
        for name in model_names(list(self.index.by_name), self.layout):
            self.models[name] = self._load_model(name)
        if not self.models:
            raise PackageError(f"{self.path}: no model (no {self.root}/data/aotc/*/{MANIFEST})")

    def _check_archive_files(self) -> None:
        fmt = self.read(self.layout.archive_format).decode("utf-8", "replace").rstrip("\r\n ")
        if fmt != ARCHIVE_FORMAT:
            hint = " (an AOTInductor package?)" if fmt == "pt2" else ""
            raise PackageError(
                f"{self.path}: archive_format is {fmt!r}, not {ARCHIVE_FORMAT!r}: "
                f"not an aotc package{hint}"
            )
        version = self.read(self.layout.archive_version).decode("utf-8", "replace").rstrip("\r\n ")
        if version != ARCHIVE_VERSION:
            raise PackageError(
                f"{self.path}: archive_version {version!r} is not supported "
                f"(this reader knows {ARCHIVE_VERSION!r})"
            )

    def _load_model(self, name: str) -> ModelInfo:
        where = f"{self.path}: model {name!r}"
        try:
            m = manifest.decode(self.read(self.layout.manifest(name)))
        except ValueError as e:
            raise PackageError(f"{where}: {e}") from e
        refused = manifest.check_version(m)
        if refused:
            raise PackageError(f"{where}: {refused}")
        problems = manifest.validate(m)
        if problems:
            raise PackageError(f"{where}: bad manifest: " + "; ".join(problems))
        if m["model"] != name:
            raise PackageError(f"{where}: manifest names model {m['model']!r}")
        return ModelInfo(name, m, self.layout)

    def entry(self, path: str) -> ZipEntry:
        """The zip entry at |path|, a full archive path or one relative to the root."""
        e = self.index.by_name.get(path) or self.index.by_name.get(f"{self.root}/{path}")
        if e is None:
            raise PackageError(f"{self.path}: no entry {path!r}")
        return e

    def read(self, path: str) -> bytes:
        """The bytes of an entry, CRC-checked."""
        e = self.entry(path)
        if e.method != 0:
            raise PackageError(f"{self.path}: entry {e.name!r} is compressed (method {e.method})")
        data = self.index.read(e)
        if zlib.crc32(data) != e.crc32:
            raise PackageError(f"{self.path}: entry {e.name!r}: CRC-32 mismatch")
        return data

    def model(self, name: str) -> ModelInfo:
        if name not in self.models:
            raise KeyError(f"no model {name!r} in {self.path} (models: {', '.join(self.models)})")
        return self.models[name]

    def weight(self, model: str, constant_name: str) -> bytes:
        """The raw (decompressed) bytes of one constant."""
        info = self.model(model)
        c = info.constant(constant_name)
        stored = self.read(info.constant_path(c))
        if c["compression"] == "zstd":
            return compression.decompress(stored, c["nbytes"], f"constant {constant_name!r}")
        if len(stored) != c["nbytes"]:
            raise PackageError(
                f"constant {constant_name!r}: {len(stored)} bytes, not {c['nbytes']}"
            )
        return stored

    def samples(self, model: str) -> Samples:
        """Sample inputs and eager outputs as (dtype, shape, raw bytes)."""
        info = self.model(model)
        out: dict[str, list[TensorBytes]] = {}
        for side in ("inputs", "outputs"):
            out[side] = []
            for rec in info.manifest["samples"][side]:
                path = self.layout.samples_dir(model) + rec["entry"]
                try:
                    header, data = npy.read(self.read(path))
                except ValueError as e:
                    raise PackageError(f"{self.path}: {path}: {e}") from e
                out[side].append((rec["dtype"], header.shape, bytes(data)))
        return Samples(out["inputs"], out["outputs"])


def read_package(path: str | os.PathLike[str]) -> Package:
    """Opens a package; PackageError when it is not a readable aotc package."""
    return Package(path)
