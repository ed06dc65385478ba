"""Turns PackageWriter.add_model's arguments into a plan: checked manifest fields and
the bytes of each entry. No file is written here; every argument error is raised
before the writer writes anything for the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from . import compression, manifest, npy
from .dtypes import lookup
from .names import LIBRARY, MANIFEST, check_relpath, is_safe_component, sanitize
from .records import Constant, Sample, tensor_bytes
from .version import AOTC_VERSION


@dataclass
class Item:
    """One entry to write, relative to one of the model's three folders."""

    folder: str  # "model", "weights" or "samples"
    entry: str
    parts: list[memoryview]


@dataclass
class WeightGroup:
    """Constants with identical bytes, stored once under |entry| (plus .zst if compressed)."""

    entry: str
    data: memoryview
    sha256: str  # of the raw bytes
    members: list[int] = field(default_factory=list)  # indices into manifest["constants"]


@dataclass
class ModelPlan:
    name: str
    manifest: dict[str, Any]  # "entries" still empty, constants' entries provisional
    items: list[Item]
    weights: list[WeightGroup]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not is_safe_component(name):
        raise ValueError(
            f"name: bad model name {name!r}: use 1-128 characters of [A-Za-z0-9._-], "
            "not starting with '.' or '-'"
        )
    return name


def _json_object(value: object, where: str) -> dict[str, Any]:
    """A JSON round trip of |value|: plain dicts and lists, and a clear error for the rest."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: not JSON-serialisable: {e}") from e


def _library_bytes(library: object) -> memoryview:
    if isinstance(library, (str, os.PathLike)):
        return memoryview(Path(library).read_bytes())
    if isinstance(library, (bytes, bytearray, memoryview)):
        return memoryview(library).cast("B")
    raise ValueError(f"library: expected bytes or a path, got {type(library).__name__}")


def _file_bytes(name: str, value: object) -> memoryview:
    if isinstance(value, str):
        return memoryview(value.encode("utf-8"))
    if isinstance(value, PurePath):
        return memoryview(Path(value).read_bytes())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value).cast("B")
    raise ValueError(
        f"files[{name!r}]: expected bytes, str (UTF-8 text) or a pathlib.Path, "
        f"got {type(value).__name__}"
    )


def _io_specs(specs: object, field: str) -> list[dict[str, Any]]:
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"{field}: expected a list of {{name, dtype, shape}} dicts")
    out = []
    for i, s in enumerate(specs):
        if not isinstance(s, Mapping):
            raise ValueError(f"{field}[{i}]: expected a dict, got {type(s).__name__}")
        spec = _json_object(s, f"{field}[{i}]")
        lookup(spec.get("dtype"), f"{field}[{i}].dtype")  # before samples are checked against it
        out.append(spec)
    return out


def _samples(
    samples: Iterable[Sample], specs: list[dict[str, Any]], side: str
) -> tuple[list[dict[str, Any]], list[Item]]:
    samples = list(samples)
    if samples and len(samples) != len(specs):
        raise ValueError(f"samples_{side}: {len(samples)} samples for {len(specs)} {side}")
    records, items = [], []
    prefix = "input" if side == "inputs" else "output"
    for i, s in enumerate(samples):
        f = f"samples_{side}[{i}]"
        if not isinstance(s, Sample):
            raise ValueError(f"{f}: expected a packager.Sample, got {type(s).__name__}")
        dtype, shape, view = tensor_bytes(s.dtype, s.shape, s.data, f)
        spec = specs[i]
        if spec.get("dtype") != dtype.name:
            raise ValueError(f"{f}: dtype {dtype.name} but {side}[{i}] is {spec.get('dtype')}")
        spec_shape = spec.get("shape")
        if isinstance(spec_shape, list) and (
            len(spec_shape) != len(shape)
            or any(isinstance(a, int) and a != b for a, b in zip(spec_shape, shape, strict=True))
        ):
            raise ValueError(f"{f}: shape {shape} does not match {side}[{i}] shape {spec_shape}")
        entry = f"{prefix}_{i}.npy"
        records.append({"entry": entry, "dtype": dtype.name, "shape": shape})
        items.append(Item("samples", entry, [memoryview(npy.header(dtype.npy_descr, shape)), view]))
    return records, items


def _weights(constants: Iterable[Constant]) -> tuple[list[dict[str, Any]], list[WeightGroup]]:
    """Constant records and the groups of identical bytes (tied weights stored once)."""
    records: list[dict[str, Any]] = []
    groups: dict[str, WeightGroup] = {}
    used: set[str] = set()
    for i, c in enumerate(constants):
        f = f"constants[{i}]"
        if not isinstance(c, Constant):
            raise ValueError(f"{f}: expected a packager.Constant, got {type(c).__name__}")
        if not isinstance(c.name, str) or not c.name:
            raise ValueError(f"{f}.name: expected a non-empty string, got {c.name!r}")
        f = f"constants[{i}] {c.name!r}"
        dtype, shape, view = tensor_bytes(c.dtype, c.shape, c.data, f)
        if not isinstance(c.state, bool):
            raise ValueError(f"{f}.state: expected a bool, got {c.state!r}")
        digest = hashlib.sha256(view).hexdigest()
        group = groups.get(digest)
        if group is None:
            group = groups[digest] = WeightGroup(_unique_entry(c.name, used), view, digest)
        group.members.append(i)
        records.append(
            {
                "name": c.name,
                "entry": group.entry,
                "dtype": dtype.name,
                "shape": shape,
                "nbytes": view.nbytes,
                "state": c.state,
                "compression": "none",
            }
        )
    return records, list(groups.values())


def _unique_entry(name: str, used: set[str]) -> str:
    base = sanitize(name)
    if base.lower().endswith(compression.ZSTD_SUFFIX):
        base += "_"  # only compressed entries end in .zst
    entry, n = base, 1
    while entry.lower() in used:  # case-insensitive: unzip on macOS would merge them
        n += 1
        entry = f"{base}-{n}"
    used.add(entry.lower())
    return entry


def _kernels(kernels: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Item]]:
    records, items = [], []
    for i, k in enumerate(kernels):
        f = f"kernels[{i}]"
        if not isinstance(k, Mapping) or "data" not in k:
            raise ValueError(f"{f}: expected a dict with name, entry, debug_handle and data")
        entry = check_relpath(k.get("entry"), f"{f}.entry")
        data = k["data"]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"{f}.data: expected bytes, got {type(data).__name__}")
        record = _json_object({key: v for key, v in k.items() if key != "data"}, f)
        records.append(record)
        items.append(Item("model", f"kernels/{entry}", [memoryview(data).cast("B")]))
    return records, items


def _files(files: Mapping[str, Any], reserved: set[str]) -> list[Item]:
    if not isinstance(files, Mapping):
        raise ValueError(f"files: expected a dict of path -> bytes, got {type(files).__name__}")
    items = []
    for name, value in files.items():
        check_relpath(name, f"files[{name!r}]")
        if name in reserved or name.startswith("kernels/"):
            raise ValueError(
                f"files[{name!r}]: reserved path ({MANIFEST}, {LIBRARY} and kernels/ "
                "are written by the packager)"
            )
        items.append(Item("model", name, [_file_bytes(name, value)]))
    return items


def plan_model(
    *,
    name: str,
    library: object,
    inputs: object,
    outputs: object,
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
) -> ModelPlan:
    """Checks add_model's arguments and returns what to write. ValueError names the field."""
    name = _check_name(name)
    in_specs, out_specs = _io_specs(inputs, "inputs"), _io_specs(outputs, "outputs")
    constant_records, weight_groups = _weights(constants)
    kernel_records, kernel_items = _kernels(kernels)
    sample_in, sample_in_items = _samples(samples_inputs, in_specs, "inputs")
    sample_out, sample_out_items = _samples(samples_outputs, out_specs, "outputs")
    library_item = Item("model", LIBRARY, [_library_bytes(library)])
    file_items = _files(files or {}, {MANIFEST, LIBRARY})
    m = {
        "format": manifest.FORMAT_NAME,
        "format_version": manifest.FORMAT_VERSION,
        "model": name,
        "producer": {"aotc": AOTC_VERSION, "python": platform.python_version()}
        | _json_object(producer or {}, "producer"),
        "abi": _json_object(abi, "abi"),
        "target": _json_object(target, "target"),
        "library": LIBRARY,
        "inputs": in_specs,
        "outputs": out_specs,
        "constants": constant_records,
        "kernels": kernel_records,
        "costs": [dict(c) for c in costs],
        "samples": {"inputs": sample_in, "outputs": sample_out},
        "metadata": _json_object(metadata or {}, "metadata"),
        "entries": {},
    }
    problems = manifest.validate(m)
    if problems:
        raise ValueError(f"model {name!r}: " + "; ".join(problems))
    items = [library_item, *kernel_items, *file_items, *sample_in_items, *sample_out_items]
    return ModelPlan(name, m, items, weight_groups)


def encode_weight(group: WeightGroup, compress: bool) -> tuple[str, memoryview, str]:
    """(entry name, stored bytes, compression) for one weight group.

    With |compress|, zstd is kept only where it makes the entry smaller.
    """
    if compress and group.data.nbytes > 0:
        packed = compression.compress(group.data)
        if len(packed) < group.data.nbytes:
            return group.entry + compression.ZSTD_SUFFIX, memoryview(packed), "zstd"
    return group.entry, group.data, "none"
