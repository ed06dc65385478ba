"""Listing and summarising a package for `aotc inspect`, from the zip alone.

Reads only the central directory, local headers, manifests, kernel_information.json
and, for one kernel, the generated sources it names: fast on multi-GB packages, and
needs neither torch nor numpy. docs/PROVENANCE.md is the schema of the provenance files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .costs_table import format_costs
from .errors import PackageError
from .names import MANIFEST
from .reader import ModelInfo, Package
from .zipreader import ZipIndex

KERNEL_INFORMATION = "kernel_information.json"
NO_PROVENANCE = "none (exported with --no-provenance)"


class EntryInfo(NamedTuple):
    name: str
    offset: int  # file offset of the entry's data (a multiple of 64 in a valid package)
    size: int


def list_entries(path: str | os.PathLike[str]) -> list[EntryInfo]:
    """(name, data offset, size) of every entry, in central directory order."""
    return [EntryInfo(e.name, e.data_offset, e.size) for e in ZipIndex(path).entries]


# ---- kernel_information.json ----------------------------------------------------------
#
# [Note: tolerant provenance] Provenance is a debugging aid, so a malformed file never
# stops `aotc inspect`: every field is checked on its own, a bad one is left out and
# named in `problems`, and everything else is still shown.


class SourceLine(NamedTuple):
    """One user line a kernel computes (`source_lines` in docs/PROVENANCE.md)."""

    file: str
    line: int
    code: str
    path: str = ""
    function: str = ""


class Span(NamedTuple):
    """Lines first..last (1-based, inclusive) of an entry under the model folder."""

    file: str
    first_line: int
    last_line: int


@dataclass(frozen=True)
class KernelCall:
    """One debug handle's record, checked: missing or malformed fields are empty."""

    handle: str
    kernel: str
    kind: str | None = None
    device: str | None = None
    bytes_read: int | str | None = None
    bytes_written: int | str | None = None
    post_grad_nodes: tuple[str, ...] = ()
    pre_grad_nodes: tuple[str, ...] = ()
    stack_traces: tuple[str, ...] = ()
    source_lines: tuple[SourceLine, ...] = ()
    code: Span | None = None  # the kernel's function in the generated sources
    call: Span | None = None  # its call in model.cc (one line)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}  # fmt: skip


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bytes(v: object) -> bool:
    return (_is_int(v) and v >= 0) or (isinstance(v, str) and bool(v))  # type: ignore[operator]


def _is_line(v: object) -> bool:
    return _is_int(v) and v >= 1  # type: ignore[operator]


def _source_line(item: object) -> SourceLine | None:
    if not isinstance(item, dict):
        return None
    file, line, code = item.get("file"), item.get("line"), item.get("code")
    if not (isinstance(file, str) and _is_line(line) and isinstance(code, str)):
        return None
    path, function = item.get("path"), item.get("function")
    return SourceLine(
        file,
        line,  # type: ignore[arg-type]
        code,
        path if isinstance(path, str) else "",
        function if isinstance(function, str) else "",
    )


def _span(value: object, first_key: str, last_key: str) -> Span | None:
    if not isinstance(value, dict):
        return None
    file, first, last = value.get("file"), value.get(first_key), value.get(last_key)
    if not (isinstance(file, str) and _is_line(first) and _is_line(last) and first <= last):
        return None
    return Span(file, first, last)  # type: ignore[arg-type]


class _Fields:
    """Checked reads of one handle's object; each missing or bad field adds a problem."""

    def __init__(self, handle: str, raw: dict[str, Any], problems: list[str]) -> None:
        self.handle, self.raw, self.problems = handle, raw, problems

    def _bad(self, key: str, expected: str) -> None:
        got = _json_type(self.raw[key])
        self.problems.append(f"{self.handle}: {key} is {got}, expected {expected}")

    def get(self, key: str, ok: Callable[[Any], bool], expected: str) -> Any:
        if key not in self.raw:
            self.problems.append(f"{self.handle}: no {key!r}")
            return None
        if not ok(self.raw[key]):
            self._bad(key, expected)
            return None
        return self.raw[key]

    def items(self, key: str, parse: Callable[[Any], Any], expected: str) -> tuple[Any, ...]:
        """A list field, keeping the items |parse| accepts (it returns None for the others)."""
        items = self.get(key, lambda v: isinstance(v, list), f"an array of {expected}")
        parsed = [parse(item) for item in items or ()]
        if None in parsed:
            self.problems.append(f"{self.handle}: {key}: {parsed.count(None)} bad item(s)")
        return tuple(p for p in parsed if p is not None)

    def span(self, key: str, first_key: str, last_key: str) -> Span | None:
        # null is allowed: a kernel may have no function of its own in src/.
        if self.raw.get(key, 0) is None:
            return None
        value = self.get(key, lambda v: True, "")
        span = _span(value, first_key, last_key)
        if value is not None and span is None:
            self.problems.append(
                f"{self.handle}: {key} is not {{file, {first_key}, {last_key}}} with 1-based lines"
            )
        return span


def _string(v: object) -> str | None:
    return v if isinstance(v, str) else None


def parse_kernel_call(handle: str, raw: object, problems: list[str]) -> KernelCall:
    """One handle's record of kernel_information.json, problems appended to |problems|."""
    # A handle is "<kernel>:<N>": the kernel's name when the record lacks it.
    fallback = handle.rpartition(":")[0] or handle
    if not isinstance(raw, dict):
        problems.append(f"{handle}: is {_json_type(raw)}, expected an object")
        return KernelCall(handle, fallback)
    f = _Fields(handle, raw, problems)
    size = "a non-negative integer or an expression string"
    return KernelCall(
        handle=handle,
        kernel=f.get("kernel", lambda v: isinstance(v, str) and v, "a name") or fallback,
        kind=f.get("kind", lambda v: isinstance(v, str), "a string"),
        device=f.get("device", lambda v: isinstance(v, str), "a string"),
        bytes_read=f.get("bytes_read", _is_bytes, size),
        bytes_written=f.get("bytes_written", _is_bytes, size),
        post_grad_nodes=f.items("post_grad_nodes", _string, "strings"),
        pre_grad_nodes=f.items("pre_grad_nodes", _string, "strings"),
        stack_traces=f.items("stack_traces", _string, "strings"),
        source_lines=f.items("source_lines", _source_line, "{file, line, code}"),
        code=f.span("code", "first_line", "last_line"),
        call=f.span("call", "line", "line"),
    )


def parse_kernel_information(data: object) -> tuple[list[KernelCall], list[str]]:
    """The kernel calls of a parsed kernel_information.json, in file (call) order, and
    the problems found: malformed parts are left out, never raised ([Note: tolerant
    provenance])."""
    problems: list[str] = []
    if not isinstance(data, dict):
        problems.append(f"is {_json_type(data)}, expected an object of debug handles")
        return [], problems
    calls = [parse_kernel_call(str(h), raw, problems) for h, raw in data.items()]
    return calls, problems


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # keeps NaN out, so --json output stays JSON


def _read_provenance(pkg: Package, info: ModelInfo) -> tuple[dict[str, Any] | None, list[str]]:
    """kernel_information.json as parsed, and problems; (None, []) when there is none."""
    path = pkg.layout.model_dir(info.name) + KERNEL_INFORMATION
    if path not in pkg.index.by_name:
        return None, []
    try:
        text = pkg.read(path)
    except PackageError as e:
        return None, [str(e)]
    try:
        data = json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        return None, [f"not valid JSON: {e}"]
    _, problems = parse_kernel_information(data)
    return (data if isinstance(data, dict) else None), problems


# ---- summary --------------------------------------------------------------------------


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


def _model_summary(pkg: Package, info: ModelInfo) -> dict[str, Any]:
    m = info.manifest
    model_dir = pkg.layout.model_dir(info.name)
    named = {info.library_path, model_dir + MANIFEST}
    named |= {info.kernel_path(k) for k in info.kernels}
    by_name = pkg.index.by_name
    library = by_name.get(info.library_path)
    provenance, problems = _read_provenance(pkg, info)
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
        "costs": m.get("costs", []),  # per kernel call: bytes and FLOPs
        "provenance": provenance,  # kernel_information.json as parsed, or None
        "provenance_problems": problems,
    }


def inspect_package(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-able summary: entries with offsets and sizes, and per model its target,
    ABI, I/O specs, constants, kernels, samples, extra files and provenance (the parsed
    kernel_information.json, None without one, and the problems found in it).

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


# ---- one kernel -----------------------------------------------------------------------


class UnknownKernelError(ValueError):
    """`--kernel NAME` names no debug handle and no kernel of the package."""


def _read_span(
    pkg: Package, model_dir: str, span: Span | None, cache: dict[str, list[str] | str]
) -> tuple[str | None, str | None]:
    """(text of the span's lines, problem): text None when they cannot be read."""
    if span is None:
        return None, None
    name = model_dir + span.file
    if name not in cache:
        try:  # split on "\n" only: line numbers as the compiler counts them
            cache[name] = pkg.read(name).decode("utf-8", "replace").split("\n")
        except PackageError as e:
            cache[name] = str(e)
    lines = cache[name]
    if isinstance(lines, str):
        return None, f"{span.file}: {lines}"
    if span.first_line > len(lines):
        return None, f"{span.file} has {len(lines)} lines, not line {span.first_line}"
    problem = None
    if span.last_line > len(lines):
        problem = f"{span.file} has {len(lines)} lines, not line {span.last_line}"
    return "\n".join(lines[span.first_line - 1 : span.last_line]), problem


def _call_json(
    pkg: Package, model: str, raw: object, call: KernelCall, problems: list[str], cache: Any
) -> dict[str, Any]:
    model_dir = pkg.layout.model_dir(model)
    source, source_problem = _read_span(pkg, model_dir, call.code, cache)
    call_source, call_problem = _read_span(pkg, model_dir, call.call, cache)
    out: dict[str, Any] = {"model": model, "handle": call.handle}
    fields = raw if isinstance(raw, dict) else {}
    out.update((k, v) for k, v in fields.items() if k not in out)
    out["kernel"] = call.kernel  # the handle's prefix when the record lacks it
    out.update(source=source, call_source=call_source)
    out["problems"] = problems + [p for p in (source_problem, call_problem) if p]
    return out


def inspect_kernel(path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """Every call of debug handle |name| ("kernel0:0") or of kernel |name| ("kernel0",
    all its calls): its kernel_information.json fields as stored, plus "model",
    "source" (the lines of its code, from the package's src/), "call_source" (its line
    in model.cc) and "problems". UnknownKernelError lists the known handles.
    """
    pkg = Package(path)
    calls: list[dict[str, Any]] = []
    known: list[str] = []
    for model, info in pkg.models.items():
        data, _ = _read_provenance(pkg, info)
        costs = {c.get("debug_handle"): c for c in info.manifest.get("costs", [])}
        cache: dict[str, list[str] | str] = {}
        for handle, raw in (data or {}).items():
            problems: list[str] = []
            call = parse_kernel_call(str(handle), raw, problems)
            known.append(call.handle)
            if name in (call.handle, call.kernel):
                found = _call_json(pkg, model, raw, call, problems, cache)
                found.setdefault("flops", costs.get(call.handle, {}).get("flops"))
                calls.append(found)
    if not calls:
        listed = ", ".join(known) if known else f"none: provenance {NO_PROVENANCE}"
        raise UnknownKernelError(f"{pkg.path}: no kernel {name!r}; known handles: {listed}")
    return {"path": pkg.path, "kernel": name, "calls": calls}


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


def _bytes_moved(call: KernelCall) -> str:
    """Read + written: a size when both are integers, else the expression."""
    r, w = call.bytes_read, call.bytes_written
    if r is None or w is None:
        return "?"
    if isinstance(r, int) and isinstance(w, int):
        return _size(r + w)
    return f"{r} + {w}"


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _trace_lines(call: KernelCall) -> list[str]:
    """file:line of each stack trace's innermost frame: the model lines when a record
    has no usable source_lines (their code text is then unknown)."""
    out = []
    for trace in call.stack_traces:
        frames = _FRAME.findall(trace)
        if frames:
            file, line = frames[-1]
            out.append(f"{os.path.basename(file)}:{line}")
    return list(dict.fromkeys(out))


def _model_lines(call: KernelCall) -> list[str]:
    if call.source_lines:
        return [f"{s.file}:{s.line}  {s.code}" for s in call.source_lines]
    return _trace_lines(call)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _warning(problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"warning: {KERNEL_INFORMATION}: {problems[0]}{more}"


def format_kernels_table(calls: list[KernelCall], indent: str = "    ") -> list[str]:
    """One row per kernel call (handle, kind, device, bytes, fused nodes), each followed
    by its model lines with their text."""
    header = ("handle", "kind", "device", "bytes")
    rows = [(c.handle, c.kind or "-", c.device or "-", _bytes_moved(c)) for c in calls]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines[0] += "  fused nodes"
    under = indent + " " * (widths[0] + 2)  # model lines start under the kind column
    for call, row in zip(calls, rows, strict=True):
        cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append(f"{indent}{cells}  {', '.join(call.post_grad_nodes) or '-'}".rstrip())
        lines += [under + line for line in _model_lines(call)]
    return lines


def _format_provenance(s: dict[str, Any]) -> list[str]:
    prov, problems = s.get("provenance"), s.get("provenance_problems") or []
    if prov is None:
        state = "unreadable" if problems else NO_PROVENANCE
        return [f"  provenance {state}"] + (["  " + _warning(problems)] if problems else [])
    calls, _ = parse_kernel_information(prov)
    kernels = len({c.kernel for c in calls})
    counts = f"{_count(len(calls), 'kernel call')} of {_count(kernels, 'kernel')}"
    lines = [f"  provenance {counts} ({KERNEL_INFORMATION})"]
    if problems:
        lines.append("  " + _warning(problems))
    return lines + (format_kernels_table(calls) if calls else [])


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
    lines.append(f"  gpu kernels {len(s['kernels'])} (cubin/PTX files)")
    for k in s["kernels"]:
        lines.append(f"    {k['name']}  {k['entry']}  {_size(k['size'])}  [{k['debug_handle']}]")
    lines.append(f"  samples    {s['samples']['inputs']} inputs, {s['samples']['outputs']} outputs")
    if s["files"]:
        lines.append(f"  files      {', '.join(s['files'])}")
    return lines + format_costs(s.get("costs") or []) + _format_provenance(s)


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


def _bytes_detail(call: KernelCall) -> str:
    r, w = call.bytes_read, call.bytes_written
    parts = f"read {'?' if r is None else r}, written {'?' if w is None else w}"
    if isinstance(r, int) and isinstance(w, int):
        return f"{_size(r + w)} ({parts} bytes)"
    return f"{_bytes_moved(call)} ({parts})"


def _numbered(text: str | None, first: int, indent: str) -> list[str]:
    if text is None:
        return []
    lines = text.split("\n")
    width = len(str(first + len(lines) - 1))
    return [f"{indent}{first + i:>{width}}  {line}".rstrip() for i, line in enumerate(lines)]


def _field(label: str, values: list[str]) -> list[str]:
    """|label| then the first value, further values aligned under it."""
    pad = "  " + " " * 17
    first = f"  {label:<17}{values[0] if values else '-'}"
    return [first.rstrip()] + [pad + v for v in values[1:]]


def _where_lines(call: KernelCall) -> list[str]:
    out = []
    for s in call.source_lines:
        out.append(f"{s.file}:{s.line}  {s.code}")
        if s.path or s.function:
            out.append(
                "  " + ", ".join(x for x in (s.path, s.function and f"in {s.function}") if x)
            )
    return out or _trace_lines(call)


def _format_call(d: dict[str, Any]) -> list[str]:
    call = parse_kernel_call(d["handle"], d, [])
    lines = [f"{call.handle}  (model {d['model']})"]
    lines += _field("kernel", [call.kernel])
    lines += _field("kind", [call.kind or "-"])
    lines += _field("device", [call.device or "-"])
    lines += _field("bytes", [_bytes_detail(call)])
    flops = d.get("flops")
    lines += _field("FLOPs", [f"{flops:,}" if isinstance(flops, int) else str(flops or "?")])
    lines += _field("post-grad nodes", [", ".join(call.post_grad_nodes)])
    lines += _field("pre-grad nodes", [", ".join(call.pre_grad_nodes)])
    lines += _field("model lines", _where_lines(call))
    lines += ["  stack traces"] if call.stack_traces else _field("stack traces", [])
    for trace in call.stack_traces:
        lines += ["    " + t for t in trace.split("\n")]
    for problem in d.get("problems") or []:
        lines.append(f"  warning: {problem}")
    if call.code is not None:
        lines += _field(
            "code", [f"{call.code.file} lines {call.code.first_line}-{call.code.last_line}"]
        )
        lines += _numbered(d.get("source"), call.code.first_line, "    ")
    if call.call is not None:
        lines += _field("call", [f"{call.call.file} line {call.call.first_line}"])
        lines += _numbered(d.get("call_source"), call.call.first_line, "    ")
    return lines


def format_kernel(d: dict[str, Any]) -> str:
    """The text `aotc inspect --kernel NAME` prints for an inspect_kernel() dict."""
    blocks = ["\n".join(_format_call(call)) for call in d["calls"]]
    return "\n\n".join(blocks) + "\n"
