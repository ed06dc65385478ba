"""Listing and summarising a package for `aotc inspect`, from the zip alone.

Reads only the central directory, local headers, manifests and
kernel_information.json: fast on multi-GB packages, and needs neither torch nor numpy.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple

from .errors import PackageError
from .names import MANIFEST
from .reader import ModelInfo, Package
from .zipreader import ZipIndex

KERNEL_INFORMATION = "kernel_information.json"


class EntryInfo(NamedTuple):
    name: str
    offset: int  # file offset of the entry's data (a multiple of 64 in a valid package)
    size: int


def list_entries(path: str | os.PathLike[str]) -> list[EntryInfo]:
    """(name, data offset, size) of every entry, in central directory order."""
    return [EntryInfo(e.name, e.data_offset, e.size) for e in ZipIndex(path).entries]


def _constants_summary(pkg: Package, info: ModelInfo) -> dict[str, Any]:
    constants = info.constants
    distinct = {c["entry"]: c for c in constants}
    return {
        "count": len(constants),
        "bytes": sum(c["nbytes"] for c in constants),
        "entries": len(distinct),
        "stored_bytes": sum(
            pkg.entry(info.constant_path(c)).size
            for c in distinct.values()
            if info.constant_path(c) in pkg.index.by_name
        ),
        "compressed": sum(c["compression"] == "zstd" for c in distinct.values()),
        "state": sum(c["state"] for c in constants),
    }


def _provenance(pkg: Package, info: ModelInfo) -> dict[str, Any] | None:
    path = pkg.layout.model_dir(info.name) + KERNEL_INFORMATION
    if path not in pkg.index.by_name:
        return None
    try:
        data = json.loads(pkg.read(path).decode("utf-8"))
    except (ValueError, PackageError):
        return None
    return data if isinstance(data, dict) else None


def _model_summary(pkg: Package, info: ModelInfo) -> dict[str, Any]:
    m = info.manifest
    model_dir = pkg.layout.model_dir(info.name)
    named = {info.library_path, model_dir + MANIFEST}
    named |= {info.kernel_path(k) for k in info.kernels}
    by_name = pkg.index.by_name
    library = by_name.get(info.library_path)
    return {
        "target": m["target"],
        "abi": m["abi"],
        "producer": m["producer"],
        "library": {"entry": info.library_path, "size": library.size if library else None},
        "inputs": m["inputs"],
        "outputs": m["outputs"],
        "constants": _constants_summary(pkg, info),
        "kernels": [
            {
                "name": k["name"],
                "entry": k["entry"],
                "debug_handle": k["debug_handle"],
                "size": by_name[p].size if (p := info.kernel_path(k)) in by_name else None,
            }
            for k in info.kernels
        ],
        "samples": {side: len(m["samples"][side]) for side in ("inputs", "outputs")},
        "files": sorted(
            n[len(model_dir) :] for n in by_name if n.startswith(model_dir) and n not in named
        ),
        "metadata": m["metadata"],
        "provenance": _provenance(pkg, info),
    }


def inspect_package(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-able summary: entries with offsets and sizes, and per model its target,
    ABI, I/O specs, constants, kernels, samples, extra files and provenance.

    A zip that is not a readable aotc package still gets its entries listed, with
    the reason under "error". Raises PackageError only when the zip itself is unreadable.
    """
    index = ZipIndex(path)
    out: dict[str, Any] = {
        "path": index.path,
        "file_size": index.file_size,
        "entries": [
            {"name": e.name, "offset": e.data_offset, "size": e.size} for e in index.entries
        ],
        "root": None,
        "models": {},
    }
    try:
        pkg = Package(path)
    except PackageError as e:
        out["error"] = str(e)
        return out
    out["root"] = pkg.root
    out["models"] = {name: _model_summary(pkg, info) for name, info in pkg.models.items()}
    return out


# ---- text ----------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "missing"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def _spec(s: dict[str, Any]) -> str:
    return f"{s['name']}: {s['dtype']}[{', '.join(str(d) for d in s['shape'])}]"


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _where(site: dict[str, Any]) -> str:
    """file:line of the innermost frame of the first stack trace of a call site."""
    traces = site.get("stack_traces")
    if isinstance(traces, list) and traces and isinstance(traces[0], str):
        frames = _FRAME.findall(traces[0])
        if frames:
            file, line = frames[-1]
            return f"{os.path.basename(file)}:{line}"
    return "?"


def _format_model(name: str, s: dict[str, Any]) -> list[str]:
    t, c = s["target"], s["constants"]
    lines = [
        f"model {name}",
        f"  target     {t['device']}  isa={t['isa'] or '-'}  arch={t['arch'] or '-'}  "
        f"min_driver={t['min_driver']}",
        f"  abi        {s['abi']['major']}.{s['abi']['minor']}",
        "  producer   " + ", ".join(f"{k} {v}" for k, v in s["producer"].items()),
        f"  library    {s['library']['entry']}  {_size(s['library']['size'])}",
    ]
    for side in ("inputs", "outputs"):
        specs = s[side]
        lines.append(f"  {side:<10} " + ("; ".join(_spec(x) for x in specs) or "none"))
    lines.append(
        f"  constants  {c['count']} in {c['entries']} entries, {_size(c['bytes'])} raw, "
        f"{_size(c['stored_bytes'])} stored, {c['compressed']} compressed, {c['state']} state"
    )
    lines.append(f"  kernels    {len(s['kernels'])}")
    for k in s["kernels"]:
        lines.append(f"    {k['name']}  {k['entry']}  {_size(k['size'])}  [{k['debug_handle']}]")
    lines.append(f"  samples    {s['samples']['inputs']} inputs, {s['samples']['outputs']} outputs")
    if s["files"]:
        lines.append(f"  files      {', '.join(s['files'])}")
    prov = s.get("provenance")
    if prov:
        lines.append(f"  provenance {len(prov)} kernel call sites ({KERNEL_INFORMATION})")
        for handle, site in prov.items():
            site = site if isinstance(site, dict) else {}
            nodes = site.get("post_grad_nodes")
            nodes_text = ", ".join(map(str, nodes)) if isinstance(nodes, list) else ""
            lines.append(f"    {handle}  {_where(site)}  {nodes_text}".rstrip())
    return lines


def format_inspection(d: dict[str, Any]) -> str:
    """The text `aotc inspect` prints for an inspect_package() dict."""
    root = f', root "{d["root"]}/"' if d.get("root") else ""
    lines = [f"{d['path']}  ({_size(d['file_size'])}, {len(d['entries'])} entries{root})"]
    if "error" in d:
        lines.append(f"error: {d['error']}")
    for name, summary in d["models"].items():
        lines += _format_model(name, summary)
    lines.append("entries")
    lines.append(f"  {'offset':>12}  {'size':>12}  name")
    for e in d["entries"]:
        lines.append(f"  {e['offset']:>12}  {e['size']:>12}  {e['name']}")
    return "\n".join(lines) + "\n"
