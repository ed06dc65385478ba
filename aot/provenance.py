"""Provenance: which graph nodes and model.py lines every kernel call comes
from (docs/PROVENANCE.md).

Two steps around codegen, so that the pipeline stays one-directional:
- trace_kernels(exported, schedule, handles), after scheduling: per debug
  handle its fused post-grad nodes, their pre-grad nodes (node.meta's
  from_node), stack traces cut at the user's frame, the model lines, kind and
  bytes. error_locations() turns them into the "model.py:12: <code>" strings
  the wrapper reports when a kernel fails.
- provenance_files(exported, traces, sources), after codegen: the package
  files (kernel_information.json, provenance/...), with each kernel's place
  in the generated sources.

[Note: from_node] run_decompositions records on every post-grad node the
chain of nodes it was made from: node.meta["from_node"] is a list of
NodeSource(name, graph_id, pass_name, from_node=[...]) whose innermost
entries name nodes of the exported (pre-grad) graph, with graph_id ==
id(pre_grad.graph). Releases differ in how many intermediate passes the
chain records and torch 2.5 and older stored (name, target) tuples, so a
pre-grad node is taken by graph_id when one matches and otherwise by name:
the innermost entries that name a node of the pre-grad graph.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy
import torch

from .frontend import ExportedModel
from .frontend.locations import Frame, in_torch, node_text, parse_stack_trace, user_frame
from .scheduler.costs import json_size, kernel_kind
from .scheduler.schedule import ExternCall, LoopKernel, Schedule

KERNEL_INFORMATION = "kernel_information.json"
NODE_MAPPINGS = "provenance/node_mappings.json"
PRE_GRAD_GRAPH = "provenance/pre_grad_graph.txt"
POST_GRAD_GRAPH = "provenance/post_grad_graph.txt"
SOURCE_DIR = "provenance/source/"
NODE_MAPPINGS_VERSION = 2.0

_aten = torch.ops.aten
_DATA_MOVEMENT_OPS = frozenset(
    getattr(_aten, name)
    for name in (
        "view",
        "_unsafe_view",
        "reshape",
        "permute",
        "expand",
        "squeeze",
        "unsqueeze",
        "t",
        "transpose",
        "select",
        "slice",
        "alias",
        "as_strided",
        "split",
        "split_with_sizes",
        "unbind",
        "unflatten",
        "flatten",
        "view_as",
        "clone",
    )
    if hasattr(_aten, name)
)
# How much of a model line the run-time error message quotes.
_ERROR_CODE_CHARS = 80


@dataclass(frozen=True)
class SourceLine:
    file: str  # entry name under provenance/source/ (or the torch-relative path)
    path: str  # the file's path at export time
    line: int
    function: str
    code: str

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class KernelTrace:
    handle: str  # "kernel3:0"
    kernel: str  # "kernel3"
    kind: str  # pointwise | reduction | template | extern
    device: str
    post_grad_nodes: list[str]
    pre_grad_nodes: list[str]
    stack_traces: list[str]
    source_lines: list[SourceLine]
    bytes_read: sympy.Expr
    bytes_written: sympy.Expr
    code: dict[str, Any] = field(default_factory=dict)  # filled by provenance_files
    call: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- #
# Kernels -> nodes -> lines                                                    #
# --------------------------------------------------------------------------- #


def trace_kernels(
    exported: ExportedModel, schedule: Schedule, handles: Sequence[str], device: str = "cpu"
) -> list[KernelTrace]:
    """One KernelTrace per kernel call of |schedule| (handles[i] is the call of
    schedule.kernels[i])."""
    post = {n.name: n for n in exported.program.graph.nodes}
    order = {name: k for k, name in enumerate(post)}
    pre_of = pre_grad_map(exported.pre_grad, exported.program)
    pre_nodes = {n.name: n for n in exported.pre_grad.graph.nodes}
    pre_order = {name: k for k, name in enumerate(pre_nodes)}
    files = _SourceFiles(exported.source_path)
    traces = []
    for kernel, handle in zip(schedule.kernels, handles, strict=True):
        names = sorted((o for o in kernel_origins(kernel) if o in post), key=order.__getitem__)
        pre = sorted({p for n in names for p in pre_of.get(n, ())}, key=pre_order.__getitem__)
        stacks: list[str] = []
        lines: list[SourceLine] = []
        # Lines come from the nodes that compute: a view read through (the
        # reshape after a GEMM) belongs to the line that made the tensor, not
        # to this kernel, unless the kernel has nothing else (a copy).
        computing = [n for n in names if not moves_data_only(post[n])] or names
        for text in [post[n].meta.get("stack_trace") for n in computing]:
            _add_trace(text, exported.source_path, files, stacks, lines)
        # A node without a stack trace of its own (export's bookkeeping) takes
        # those of the pre-grad nodes it came from.
        if not stacks:
            for p in pre:
                text = pre_nodes[p].meta.get("stack_trace")
                _add_trace(text, exported.source_path, files, stacks, lines)
        traces.append(
            KernelTrace(
                handle=handle,
                kernel=kernel.name,
                kind=kernel_kind(kernel),
                device=device,
                post_grad_nodes=names,
                pre_grad_nodes=pre,
                stack_traces=stacks,
                source_lines=lines,
                bytes_read=sympy.sympify(kernel.bytes_read),
                bytes_written=sympy.sympify(kernel.bytes_written),
            )
        )
    return traces


def kernel_origins(kernel: LoopKernel | ExternCall) -> list[str]:
    """The FX node names |kernel| computes, first appearance first."""
    origins: dict[str, None] = {}
    if isinstance(kernel, LoopKernel):
        nodes = kernel.nodes
    else:
        nodes = [kernel.node, *(kernel.epilogue.nodes if kernel.epilogue else [])]
    for node in nodes:
        origins.update(dict.fromkeys(node.origins))
    return list(origins)


def moves_data_only(node: torch.fx.Node) -> bool:
    """Whether |node| only re-indexes or copies its input (views, getitem,
    clone): no computation of its own."""
    if node.target is operator.getitem:
        return True
    packet = getattr(node.target, "overloadpacket", None)
    return packet in _DATA_MOVEMENT_OPS


def pre_grad_map(
    pre_grad: torch.export.ExportedProgram, post_grad: torch.export.ExportedProgram
) -> dict[str, list[str]]:
    """post-grad node name -> the pre-grad node names it came from
    ([Note: from_node])."""
    names = {n.name for n in pre_grad.graph.nodes}
    graph_id = id(pre_grad.graph)
    out: dict[str, list[str]] = {}
    for node in post_grad.graph.nodes:
        sources = list(_sources(node.meta.get("from_node") or []))
        by_id = [name for name, gid, _ in sources if gid == graph_id and name in names]
        if not by_id:
            deepest = max((depth for _, _, depth in sources), default=-1)
            by_id = [name for name, _, depth in sources if name in names and depth == deepest]
            if not by_id:
                by_id = [name for name, _, _ in sources if name in names]
        if not by_id and not sources and node.name in names and node.op == "placeholder":
            by_id = [node.name]
        if by_id:
            out[node.name] = list(dict.fromkeys(by_id))
    return out


def _sources(entries: Sequence[Any], depth: int = 0) -> Iterator[tuple[str, Any, int]]:
    """(name, graph_id, depth) of every entry of a from_node chain."""
    for entry in entries:
        if isinstance(entry, tuple):  # torch <= 2.5: (name, target)
            yield str(entry[0]), None, depth
            continue
        name = getattr(entry, "name", None)
        if name is None:
            continue
        yield str(name), getattr(entry, "graph_id", None), depth
        yield from _sources(getattr(entry, "from_node", None) or [], depth + 1)


class _SourceFiles:
    """Names user files by their base name, unique within one package."""

    def __init__(self, model_file: Path | None) -> None:
        self.names: dict[str, str] = {}  # real path -> entry name
        if model_file is not None:
            self.name(str(model_file))

    def name(self, path: str) -> str:
        real = os.path.realpath(path)
        if real not in self.names:
            base = os.path.basename(real)
            stem, suffix = os.path.splitext(base)
            taken = set(self.names.values())
            name, k = base, 1
            while name in taken:
                name, k = f"{stem}_{k}{suffix}", k + 1
            self.names[real] = name
        return self.names[real]


def _add_trace(
    stack_trace: str | None,
    source_path: Path | None,
    files: _SourceFiles,
    stacks: list[str],
    lines: list[SourceLine],
) -> None:
    frames = parse_stack_trace(stack_trace)
    frame = user_frame(frames, source_path)
    if frame is None:
        return
    kept = frames[: frames.index(frame) + 1]
    text = "\n".join(f'File "{f.file}", line {f.line}, in {f.function}\n    {f.code}' for f in kept)
    if text not in stacks:
        stacks.append(text)
    line = _source_line(frame, files)
    if all((x.path, x.line) != (line.path, line.line) for x in lines):
        lines.append(line)


def _source_line(frame: Frame, files: _SourceFiles) -> SourceLine:
    if in_torch(frame):
        torch_dir = os.path.realpath(os.path.dirname(torch.__file__))
        rel = os.path.relpath(os.path.realpath(frame.file), torch_dir)
        file = "torch/" + rel.replace(os.sep, "/")
    else:
        file = files.name(frame.file)
    return SourceLine(file, frame.file, frame.line, frame.function, frame.code)


def error_locations(traces: Sequence[KernelTrace]) -> dict[str, str]:
    """debug handle -> "model.py:12: <code>" for run-time error messages (the
    kernel's first model line; kernels without one are left out)."""
    out = {}
    for t in traces:
        if t.source_lines:
            line = t.source_lines[0]
            code = line.code
            if len(code) > _ERROR_CODE_CHARS:
                code = code[: _ERROR_CODE_CHARS - 3] + "..."
            out[t.handle] = f"{line.where()}: {code}" if code else line.where()
    return out


# --------------------------------------------------------------------------- #
# Package files                                                                #
# --------------------------------------------------------------------------- #


def provenance_files(
    exported: ExportedModel,
    traces: Sequence[KernelTrace],
    sources: Mapping[str, str],
    code_files: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """The provenance entries of the model folder: kernel_information.json,
    provenance/node_mappings.json, both graphs as text and the user sources.
    |sources| are the generated files ({"model.cc": ..., "kernels_0.cc": ...},
    stored under src/). |code_files| maps a debug handle to the whole file
    holding its code (a GPU kernel's Triton source, "src/triton/k.py")."""
    _locate_code(traces, sources)
    for trace in traces:
        path = (code_files or {}).get(trace.handle)
        name = path.removeprefix("src/") if path else None
        if name in sources:
            last = max(1, len(sources[name].splitlines()))
            trace.code = {"file": path, "first_line": 1, "last_line": last}
    files = {
        KERNEL_INFORMATION: _json(kernel_information(traces)),
        NODE_MAPPINGS: _json(node_mappings(exported, traces)),
        PRE_GRAD_GRAPH: graph_text(exported.pre_grad, exported.source_path).encode(),
        POST_GRAD_GRAPH: graph_text(exported.program, exported.source_path).encode(),
    }
    # The model file always; then every user file a kernel's lines point into.
    user_files: dict[str, str] = {}  # entry name -> path
    if exported.source_path is not None:
        user_files[os.path.basename(exported.source_path)] = str(exported.source_path)
    for line in (line for t in traces for line in t.source_lines):
        if not line.file.startswith("torch/"):
            user_files.setdefault(line.file, line.path)
    for name, path in user_files.items():
        try:
            files[SOURCE_DIR + name] = Path(path).read_bytes()
        except OSError:
            continue  # a frame in a file that no longer exists (exec'd code)
    return files


def kernel_information(traces: Sequence[KernelTrace]) -> dict[str, Any]:
    """kernel_information.json: PyTorch's three keys plus aotc's."""
    return {
        t.handle: {
            "stack_traces": t.stack_traces,
            "post_grad_nodes": t.post_grad_nodes,
            "pre_grad_nodes": t.pre_grad_nodes,
            "kernel": t.kernel,
            "kind": t.kind,
            "device": t.device,
            "bytes_read": json_size(t.bytes_read),
            "bytes_written": json_size(t.bytes_written),
            "source_lines": [vars(line) for line in t.source_lines],
            "code": t.code,
            "call": t.call,
        }
        for t in traces
    }


def node_mappings(exported: ExportedModel, traces: Sequence[KernelTrace]) -> dict[str, Any]:
    """node_mappings.json in the keys PyTorch's tools read."""
    post_to_pre = pre_grad_map(exported.pre_grad, exported.program)
    pre_to_post: dict[str, list[str]] = {}
    for post, pres in post_to_pre.items():
        for pre in pres:
            pre_to_post.setdefault(pre, []).append(post)
    post_to_code: dict[str, list[str]] = {}
    for t in traces:
        for node in t.post_grad_nodes:
            post_to_code.setdefault(node, []).append(t.handle)
    return {
        "version": NODE_MAPPINGS_VERSION,
        "preToPost": pre_to_post,
        "postToPre": post_to_pre,
        "cppCodeToPost": {t.handle: t.post_grad_nodes for t in traces},
        "postToCppCode": post_to_code,
    }


def graph_text(program: torch.export.ExportedProgram, source_path: Path | None) -> str:
    """One line per node (node_text), with "  # model.py:16" where the node
    has a user line."""
    lines = []
    for node in program.graph.nodes:
        text = node_text(node)
        frame = user_frame(parse_stack_trace(node.meta.get("stack_trace")), source_path)
        if frame is not None and not in_torch(frame):
            text += f"  # {os.path.basename(frame.file)}:{frame.line}"
        lines.append(text)
    return "\n".join(lines) + "\n"


def _locate_code(traces: Sequence[KernelTrace], sources: Mapping[str, str]) -> None:
    """Fills each trace's code span and call line from the generated sources:
    a kernel's function starts at its "// <handle>" comment and ends at the
    first line that is "}" alone; its call is the line after the handle's
    comment in model.cc."""
    by_handle = {t.handle: t for t in traces}
    for name, text in sources.items():
        lines = text.splitlines()
        for k, line in enumerate(lines):
            match = _HANDLE_COMMENT.match(line)
            trace = by_handle.get(match["handle"]) if match else None
            if trace is None:
                continue
            if name == "model.cc":
                if line.startswith(" "):  # the call site, indented inside run()
                    trace.call = {"file": f"src/{name}", "line": k + 2}
            elif not trace.code:
                end = next((j for j in range(k, len(lines)) if lines[j] == "}"), len(lines) - 1)
                trace.code = {"file": f"src/{name}", "first_line": k + 1, "last_line": end + 1}


_HANDLE_COMMENT = re.compile(r"^\s*// (?P<handle>[A-Za-z_][A-Za-z0-9_]*:\d+)$")


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1) + "\n").encode()
