"""manifest.json, format_version 1: the schema, as a checker that lists every problem.

The writer runs the same checker on what it is about to write (and raises), the
reader and verifier on what they read (and report). docs/FORMAT.md describes each
field; keep the two in step. Readers ignore keys they do not know.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .dtypes import DTYPES, numel
from .names import Layout, is_safe_component, path_problem

FORMAT_NAME = "aotc"
FORMAT_VERSION = 1  # the major version; a reader refuses any other value

DEVICES = ("cpu", "cuda")
COMPRESSIONS = ("none", "zstd")
SHA256 = re.compile(r"[0-9a-f]{64}")


def encode(manifest: dict[str, Any]) -> bytes:
    """UTF-8 JSON; NaN and infinities are refused (they are not JSON)."""
    return (json.dumps(manifest, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def decode(data: bytes) -> Any:
    """Parses manifest bytes; ValueError when they are not UTF-8 JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"manifest is not UTF-8 JSON: {e}") from e


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


INT64_MAX = 2**63 - 1  # every integer must fit a C int64_t


def _is_count(v: object) -> bool:
    return _is_int(v) and 0 <= v <= INT64_MAX  # type: ignore[operator]


class _Checker:
    """Collects problems as 'field: what is wrong' lines."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, field: str, msg: str) -> None:
        self.problems.append(f"{field}: {msg}")

    def obj(self, v: object, field: str) -> dict[str, Any] | None:
        if not isinstance(v, dict):
            self.fail(field, f"expected an object, got {type(v).__name__}")
            return None
        return v

    def lst(self, v: object, field: str) -> list[Any]:
        if not isinstance(v, list):
            self.fail(field, f"expected a list, got {type(v).__name__}")
            return []
        return v

    def string(self, v: object, field: str, *, nonempty: bool = True) -> bool:
        if not isinstance(v, str) or (nonempty and not v):
            self.fail(field, f"expected a non-empty string, got {v!r}")
            return False
        return True

    def keys(self, d: dict[str, Any], field: str, required: tuple[str, ...]) -> None:
        for k in required:
            if k not in d:
                self.fail(field, f"missing key {k!r}")

    def dtype(self, v: object, field: str) -> bool:
        if not isinstance(v, str) or v not in DTYPES:
            self.fail(field, f"unknown dtype {v!r}")
            return False
        return True

    def relpath(self, v: object, field: str) -> bool:
        problem = path_problem(v)
        if problem:
            self.fail(field, f"unsafe or missing path {v!r}: {problem}")
            return False
        return True

    def concrete_shape(self, v: object, field: str) -> bool:
        if not isinstance(v, list) or not all(_is_count(d) for d in v):
            self.fail(field, f"expected a list of non-negative ints, got {v!r}")
            return False
        return True

    def unique(self, values: list[Any], field: str, what: str) -> None:
        seen: set[Any] = set()
        for v in values:
            if isinstance(v, str):
                if v in seen:
                    self.fail(field, f"duplicate {what} {v!r}")
                seen.add(v)


def _check_target(c: _Checker, v: object) -> None:
    t = c.obj(v, "target")
    if t is None:
        return
    c.keys(t, "target", ("device", "isa", "arch", "min_driver"))
    if "device" in t and t["device"] not in DEVICES:
        c.fail("target.device", f"expected one of {DEVICES}, got {t['device']!r}")
    for k in ("isa", "arch"):
        if k in t and t[k] is not None and not isinstance(t[k], str):
            c.fail(f"target.{k}", f"expected a string or null, got {t[k]!r}")
    if t.get("device") == "cuda" and not isinstance(t.get("arch"), str):
        c.fail("target.arch", "a cuda target needs its GPU arch (e.g. 'sm_90')")
    if "min_driver" in t and not _is_count(t["min_driver"]):
        c.fail("target.min_driver", f"expected a non-negative int, got {t['min_driver']!r}")


def _check_abi(c: _Checker, v: object) -> None:
    a = c.obj(v, "abi")
    if a is None:
        return
    c.keys(a, "abi", ("major", "minor"))
    for k in ("major", "minor"):
        if k in a and not _is_count(a[k]):
            c.fail(f"abi.{k}", f"expected a non-negative int, got {a[k]!r}")


def _check_producer(c: _Checker, v: object) -> None:
    p = c.obj(v, "producer")
    if p is None:
        return
    c.keys(p, "producer", ("aotc", "python"))
    for k, val in p.items():
        if not isinstance(val, str):
            c.fail(f"producer.{k}", f"expected a string, got {val!r}")


def _check_io(c: _Checker, v: object, field: str) -> None:
    specs = c.lst(v, field)
    for i, s in enumerate(specs):
        f = f"{field}[{i}]"
        d = c.obj(s, f)
        if d is None:
            continue
        c.keys(d, f, ("name", "dtype", "shape"))
        if "name" in d:
            c.string(d["name"], f"{f}.name")
        if "dtype" in d:
            c.dtype(d["dtype"], f"{f}.dtype")
        shape = d.get("shape", [])
        if not isinstance(shape, list) or not all(
            _is_count(x) or (isinstance(x, str) and x) for x in shape
        ):
            c.fail(f"{f}.shape", f"expected a list of ints or symbol strings, got {shape!r}")
    c.unique([s.get("name") for s in specs if isinstance(s, dict)], field, "name")


def _check_constants(c: _Checker, v: object) -> None:
    constants = c.lst(v, "constants")
    by_entry: dict[str, tuple[int, str]] = {}
    for i, k in enumerate(constants):
        f = f"constants[{i}]"
        d = c.obj(k, f)
        if d is None:
            continue
        c.keys(d, f, ("name", "entry", "dtype", "shape", "nbytes", "state", "compression"))
        if "name" in d:
            c.string(d["name"], f"{f}.name")
        entry_ok = "entry" in d and c.relpath(d["entry"], f"{f}.entry")
        dtype_ok = "dtype" in d and c.dtype(d["dtype"], f"{f}.dtype")
        shape_ok = "shape" in d and c.concrete_shape(d["shape"], f"{f}.shape")
        nbytes = d.get("nbytes")
        if "nbytes" in d and not _is_count(nbytes):
            c.fail(f"{f}.nbytes", f"expected a non-negative int, got {nbytes!r}")
        elif dtype_ok and shape_ok and nbytes is not None:
            want = numel(d["shape"]) * DTYPES[d["dtype"]].itemsize
            if nbytes != want:
                c.fail(f"{f}.nbytes", f"{nbytes} but shape {d['shape']} {d['dtype']} is {want}")
        if "state" in d and not isinstance(d["state"], bool):
            c.fail(f"{f}.state", f"expected true or false, got {d['state']!r}")
        comp = d.get("compression")
        if "compression" in d and comp not in COMPRESSIONS:
            c.fail(f"{f}.compression", f"expected one of {COMPRESSIONS}, got {comp!r}")
        if entry_ok and comp in COMPRESSIONS:
            if (comp == "zstd") != d["entry"].endswith(".zst"):
                c.fail(f"{f}.entry", "name ends in .zst exactly when compression is zstd")
            shared = by_entry.setdefault(d["entry"], (nbytes, comp))  # type: ignore[arg-type]
            if shared != (nbytes, comp):
                c.fail(f"{f}.entry", f"shared entry {d['entry']!r} with different nbytes")
    c.unique([k.get("name") for k in constants if isinstance(k, dict)], "constants", "name")


def _check_kernels(c: _Checker, v: object) -> None:
    kernels = c.lst(v, "kernels")
    for i, k in enumerate(kernels):
        f = f"kernels[{i}]"
        d = c.obj(k, f)
        if d is None:
            continue
        c.keys(d, f, ("name", "entry", "debug_handle"))
        if "name" in d:
            c.string(d["name"], f"{f}.name")
        if "entry" in d:
            c.relpath(d["entry"], f"{f}.entry")
        if "debug_handle" in d:
            c.string(d["debug_handle"], f"{f}.debug_handle")
    c.unique([k.get("entry") for k in kernels if isinstance(k, dict)], "kernels", "entry")


def _is_cost(v: object) -> bool:
    # An integer, or an expression over a dynamic model's size symbols.
    return _is_count(v) or (isinstance(v, str) and bool(v))


def _check_costs(c: _Checker, v: object) -> None:
    for i, k in enumerate(c.lst(v, "costs")):
        f = f"costs[{i}]"
        d = c.obj(k, f)
        if d is None:
            continue
        c.keys(d, f, ("debug_handle", "kind", "bytes_read", "bytes_written", "flops"))
        for key in ("debug_handle", "kind"):
            if key in d:
                c.string(d[key], f"{f}.{key}")
        for key in ("bytes_read", "bytes_written", "flops"):
            if key in d and not _is_cost(d[key]):
                c.fail(
                    f"{f}.{key}",
                    f"expected a non-negative integer or an expression, got {d[key]!r}",
                )


def _check_samples(c: _Checker, v: object) -> None:
    s = c.obj(v, "samples")
    if s is None:
        return
    c.keys(s, "samples", ("inputs", "outputs"))
    entries = []
    for side in ("inputs", "outputs"):
        for i, rec in enumerate(c.lst(s.get(side, []), f"samples.{side}")):
            f = f"samples.{side}[{i}]"
            d = c.obj(rec, f)
            if d is None:
                continue
            c.keys(d, f, ("entry", "dtype"))
            if "entry" in d and c.relpath(d["entry"], f"{f}.entry"):
                entries.append(d["entry"])
            if "dtype" in d:
                c.dtype(d["dtype"], f"{f}.dtype")
            if "shape" in d:
                c.concrete_shape(d["shape"], f"{f}.shape")
    c.unique(entries, "samples", "entry")


def _check_entries(c: _Checker, v: object) -> None:
    entries = c.obj(v, "entries")
    if entries is None:
        return
    for path, rec in entries.items():
        f = f"entries[{path!r}]"
        c.relpath(path, f)
        d = c.obj(rec, f)
        if d is None:
            continue
        c.keys(d, f, ("size", "sha256"))
        if "size" in d and not _is_count(d["size"]):
            c.fail(f"{f}.size", f"expected a non-negative int, got {d['size']!r}")
        if "sha256" in d and not (isinstance(d["sha256"], str) and SHA256.fullmatch(d["sha256"])):
            c.fail(f"{f}.sha256", f"expected 64 lowercase hex digits, got {d['sha256']!r}")


def check_version(manifest: object) -> str | None:
    """Why a reader must refuse |manifest| outright (not aotc, unknown version), else None."""
    if not isinstance(manifest, dict):
        return "manifest is not a JSON object"
    if manifest.get("format") != FORMAT_NAME:
        return f"format is {manifest.get('format')!r}, not {FORMAT_NAME!r}"
    version = manifest.get("format_version")
    if not _is_int(version):
        return f"format_version must be an int, got {version!r}"
    if version != FORMAT_VERSION:
        return f"format_version {version} is not supported (this reader knows {FORMAT_VERSION})"
    return None


def validate(manifest: object) -> list[str]:
    """Every schema problem of |manifest| as 'field: problem' lines; [] when it is valid."""
    refused = check_version(manifest)
    if refused:
        return [refused]
    assert isinstance(manifest, dict)
    c = _Checker()
    c.keys(
        manifest,
        "manifest",
        ("model", "producer", "abi", "target", "library", "inputs", "outputs", "constants")
        + ("kernels", "samples", "metadata", "entries"),
    )
    model = manifest.get("model")
    if "model" in manifest and not (isinstance(model, str) and is_safe_component(model)):
        c.fail(
            "model",
            f"expected a name of [A-Za-z0-9._-] not starting with '.' or '-', got {model!r}",
        )
    if "producer" in manifest:
        _check_producer(c, manifest["producer"])
    if "abi" in manifest:
        _check_abi(c, manifest["abi"])
    if "target" in manifest:
        _check_target(c, manifest["target"])
    if "library" in manifest:
        c.relpath(manifest["library"], "library")
    for side in ("inputs", "outputs"):
        if side in manifest:
            _check_io(c, manifest[side], side)
    if "constants" in manifest:
        _check_constants(c, manifest["constants"])
    if "kernels" in manifest:
        _check_kernels(c, manifest["kernels"])
    if "costs" in manifest:  # optional: packages before aotc 0.1.0's costs lack it
        _check_costs(c, manifest["costs"])
    if "samples" in manifest:
        _check_samples(c, manifest["samples"])
    if "metadata" in manifest:
        c.obj(manifest["metadata"], "metadata")
    if "entries" in manifest:
        _check_entries(c, manifest["entries"])
    return c.problems


def references(manifest: dict[str, Any], layout: Layout) -> dict[str, str]:
    """Full archive path -> 'what refers to it' for every entry a valid manifest names."""
    model = manifest["model"]
    out = {layout.model_dir(model) + manifest["library"]: "library"}
    for i, k in enumerate(manifest["kernels"]):
        out[layout.kernels_dir(model) + k["entry"]] = f"kernels[{i}]"
    for i, k in enumerate(manifest["constants"]):
        out.setdefault(layout.weights_dir(model) + k["entry"], f"constants[{i}]")
    for side in ("inputs", "outputs"):
        for i, s in enumerate(manifest["samples"][side]):
            out[layout.samples_dir(model) + s["entry"]] = f"samples.{side}[{i}]"
    return out
