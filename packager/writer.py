"""PackageWriter: builds a .pt2 in a temporary file and renames it into place.

[Note: atomic writes] The package is written to a temporary file in the destination
directory (same filesystem, so the rename is atomic), flushed and fsync'ed, then
os.replace'd over the destination, and the directory is fsync'ed. Until then an
existing package at the path is untouched; on any error the temporary file is
removed. Readers therefore see the old package or the complete new one, never half.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from . import manifest
from .assemble import ModelPlan, encode_weight, plan_model
from .names import ARCHIVE_FORMAT, ARCHIVE_VERSION, Layout, sanitize
from .records import Constant, Sample
from .zipwriter import AlignedZipWriter, Buffer, WrittenEntry


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


class PackageWriter:
    """Writes one .pt2 package holding one or more models.

        with PackageWriter("out/mlp.pt2") as w:
            w.add_model(name="mlp", library=..., inputs=[...], ...)

    Commits on a clean exit from the with-block, discards on an exception. Without a
    with-block call commit() or abort(); an uncommitted writer that is garbage
    collected removes its temporary file. The root folder inside the zip is the
    file's stem (sanitised to [A-Za-z0-9._-]).
    """

    def __init__(
        self, path: str | os.PathLike[str], compress: bool = False, force_zip64: bool = False
    ) -> None:
        self.path = Path(path)
        self.compress = compress
        self.layout = Layout(sanitize(self.path.stem))
        self._models: list[str] = []
        self._state = "open"  # open -> committed | aborted; "broken" after a failed write
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent or "."
        )
        self._finalizer = weakref.finalize(self, _remove, self._tmp)
        try:
            self._file = os.fdopen(fd, "wb")
            self._zip = AlignedZipWriter(self._file, force_zip64=force_zip64)
            self._add(self.layout.archive_format, ARCHIVE_FORMAT.encode())
            self._add(self.layout.archive_version, ARCHIVE_VERSION.encode())
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> PackageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    @property
    def models(self) -> list[str]:
        return list(self._models)

    def add_model(
        self,
        *,
        name: str,
        library: bytes | str | os.PathLike[str],
        inputs: list[Mapping[str, Any]],
        outputs: list[Mapping[str, Any]],
        target: Mapping[str, Any],
        abi: Mapping[str, Any],
        constants: Iterable[Constant] = (),
        kernels: Iterable[Mapping[str, Any]] = (),
        costs: Iterable[Mapping[str, Any]] = (),
        samples_inputs: Iterable[Sample] = (),
        samples_outputs: Iterable[Sample] = (),
        files: Mapping[str, Any] | None = None,
        producer: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Adds one model and returns its manifest. docs/FORMAT.md describes each field.

        Arguments are checked before anything is written; a ValueError names the field.
        """
        self._check_open()
        if name in self._models:
            raise ValueError(f"name: duplicate model name {name!r}")
        plan = plan_model(
            name=name,
            library=library,
            inputs=inputs,
            outputs=outputs,
            target=target,
            abi=abi,
            constants=constants,
            kernels=kernels,
            costs=costs,
            samples_inputs=samples_inputs,
            samples_outputs=samples_outputs,
            files=files,
            producer=producer,
            metadata=metadata,
        )
        try:
            self._write_model(plan)
        except BaseException:
            self._state = "broken"
            raise
        self._models.append(name)
        return plan.manifest

    def _write_model(self, plan: ModelPlan) -> None:
        m, layout = plan.manifest, self.layout
        folders = dict(
            zip(("model", "weights", "samples"), layout.model_dirs(plan.name), strict=True)
        )
        entries: dict[str, dict[str, Any]] = {}
        for item in plan.items:
            path = folders[item.folder] + item.entry
            entries[path] = self._add_hashed(path, item.parts)
        for group in plan.weights:
            entry, data, comp = encode_weight(group, self.compress)
            path = folders["weights"] + entry
            known = group.sha256 if comp == "none" else None  # raw bytes were hashed for dedupe
            entries[path] = self._add_hashed(path, [data], known)
            for i in group.members:
                m["constants"][i].update(entry=entry, compression=comp)
        m["entries"] = dict(sorted(entries.items()))
        problems = manifest.validate(m)
        if problems:  # the plan was checked; this guards the writer itself
            raise AssertionError(f"writer produced an invalid manifest: {problems}")
        self._add(layout.manifest(plan.name), manifest.encode(m))

    def _add_hashed(
        self, path: str, parts: list[memoryview], sha256: str | None = None
    ) -> dict[str, Any]:
        if sha256 is None:
            digest = hashlib.sha256()
            for p in parts:
                digest.update(p)
            sha256 = digest.hexdigest()
        written = self._add(path, parts)
        return {"size": written.size, "sha256": sha256}

    def _add(self, path: str, data: Buffer | list[memoryview]) -> WrittenEntry:
        parts = data if isinstance(data, list) else [data]
        return self._zip.add(path, parts)

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"PackageWriter for {self.path} is {self._state}")

    def commit(self) -> None:
        """Finishes the zip and atomically replaces the destination with it."""
        if self._state == "broken":
            self.abort()
            raise RuntimeError(f"{self.path}: not written: an earlier add_model failed")
        self._check_open()
        if not self._models:
            self.abort()
            raise ValueError(f"{self.path}: a package needs at least one model")
        try:
            self._zip.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self._finalizer.detach()
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Discards the package; an existing file at the path is left as it was."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        file = getattr(self, "_file", None)
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
        self._finalizer()
