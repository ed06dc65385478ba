"""The provenance report: one self-contained HTML page for `aotc inspect PKG --html`.

A kernel list and four linked panels (model source, pre-grad graph, post-grad graph,
generated code) built from the files docs/PROVENANCE.md describes. The data rides in a
<script type="application/json"> block and vanilla JS renders it: nothing is fetched,
so the page opens from a file:// URL anywhere. Reads the zip only (no torch).
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any

from .inspection import KERNEL_INFORMATION
from .reader import Package

NODE_MAPPINGS = "provenance/node_mappings.json"
PRE_GRAD_GRAPH = "provenance/pre_grad_graph.txt"
POST_GRAD_GRAPH = "provenance/post_grad_graph.txt"
SOURCE_DIR = "provenance/source/"

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_NODE = re.compile(r"\s*([^\s=]+) = ")  # "<name> = <op>(...)": the line of node <name>
_LOCATION = re.compile(r"#\s*([^#:\s]+):(\d+)\s*$")  # trailing "  # <file>:<line>"


# ---- reading the package ----------------------------------------------------------------


def _pick_model(pkg: Package, model: str | None) -> str:
    names = list(pkg.models)
    if model is not None:
        if model not in pkg.models:
            raise ValueError(f"{pkg.path}: no model {model!r} (models: {', '.join(names)})")
        return model
    if len(names) == 1:
        return names[0]
    raise ValueError(
        f"{pkg.path}: {len(names)} models ({', '.join(names)}); name the one to report"
    )


def _text(pkg: Package, path: str) -> str | None:
    if path not in pkg.index.by_name:
        return None
    return pkg.read(path).decode("utf-8", "replace")


def _json(pkg: Package, path: str) -> Any:
    text = _text(pkg, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{pkg.path}: {path}: not valid JSON: {e}") from e


def _lines_from_traces(traces: Any) -> list[dict[str, Any]]:
    """source_lines for a kernel_information.json that has only stack_traces: the
    innermost frame of each trace (the schema puts the model's line last)."""
    out: list[dict[str, Any]] = []
    for trace in traces if isinstance(traces, list) else []:
        frames = _FRAME.findall(trace) if isinstance(trace, str) else []
        if frames:
            path, line = frames[-1]
            entry = {"file": os.path.basename(path), "line": int(line), "code": ""}
            if entry not in out:
                out.append(entry)
    return out


def _kernel(handle: str, site: Any) -> dict[str, Any]:
    """One kernel_information.json entry, with every key the page reads present."""
    site = site if isinstance(site, dict) else {}
    lines = site.get("source_lines")
    return {
        "handle": handle,
        "kernel": site.get("kernel", handle.split(":")[0]),
        "kind": site.get("kind", "?"),
        "device": site.get("device", "?"),
        "bytes_read": site.get("bytes_read"),
        "bytes_written": site.get("bytes_written"),
        "post_grad_nodes": list(site.get("post_grad_nodes") or []),
        "pre_grad_nodes": list(site.get("pre_grad_nodes") or []),
        "source_lines": lines
        if isinstance(lines, list)
        else _lines_from_traces(site.get("stack_traces")),
        "code": site.get("code"),
        "call": site.get("call"),
    }


def _graph(text: str | None) -> list[dict[str, Any]]:
    """Graph text as {text, node, file, line} per line (node/file/line may be None)."""
    out = []
    for line in (text or "").splitlines():
        node, loc = _NODE.match(line), _LOCATION.search(line)
        out.append(
            {
                "text": line,
                "node": node.group(1) if node else None,
                "file": loc.group(1) if loc else None,
                "line": int(loc.group(2)) if loc else None,
            }
        )
    return out


def _code_files(pkg: Package, model_dir: str, kernels: list[dict[str, Any]]) -> dict[str, str]:
    """The generated files the kernels point into (code and call sites), in that order."""
    names: list[str] = []
    for k in kernels:
        for where in (k["code"], k["call"]):
            if isinstance(where, dict) and isinstance(where.get("file"), str):
                if where["file"] not in names:
                    names.append(where["file"])
    files = {n: _text(pkg, model_dir + n) for n in names}
    return {n: t for n, t in files.items() if t is not None}


def _sources(pkg: Package, model_dir: str) -> dict[str, str]:
    prefix = model_dir + SOURCE_DIR
    names = sorted(n for n in pkg.index.by_name if n.startswith(prefix) and not n.endswith("/"))
    return {n[len(prefix) :]: pkg.read(n).decode("utf-8", "replace") for n in names}


def _node_kernels(kernels: list[dict[str, Any]], key: str) -> dict[str, list[str]]:
    """node -> handles of the kernels that list it under |key|, in call order."""
    out: dict[str, list[str]] = {}
    for k in kernels:
        for node in k[key]:
            out.setdefault(node, []).append(k["handle"])
    return out


def report_data(package_path: str, model: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as one JSON-able dict. ValueError without provenance."""
    pkg = Package(package_path)
    name = _pick_model(pkg, model)
    model_dir = pkg.layout.model_dir(name)
    info = _json(pkg, model_dir + KERNEL_INFORMATION)
    if info is None:
        raise ValueError(
            f"{package_path}: model {name!r} has no provenance (no {KERNEL_INFORMATION}); "
            "export it without --no-provenance"
        )
    if not isinstance(info, dict):
        raise ValueError(f"{package_path}: {KERNEL_INFORMATION} is not a JSON object")
    kernels = [_kernel(str(h), site) for h, site in info.items()]
    mappings = _json(pkg, model_dir + NODE_MAPPINGS)
    mappings = mappings if isinstance(mappings, dict) else {}
    return {
        "package": os.path.basename(package_path),
        "model": name,
        "kernels": kernels,
        "pre_grad": _graph(_text(pkg, model_dir + PRE_GRAD_GRAPH)),
        "post_grad": _graph(_text(pkg, model_dir + POST_GRAD_GRAPH)),
        "sources": _sources(pkg, model_dir),
        "code": _code_files(pkg, model_dir, kernels),
        "pre_to_post": mappings.get("preToPost") or {},
        "post_to_pre": mappings.get("postToPre") or {},
        "post_kernels": _node_kernels(kernels, "post_grad_nodes"),
        "pre_kernels": _node_kernels(kernels, "pre_grad_nodes"),
    }


# ---- the page ---------------------------------------------------------------------------


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: '<', '>' and '&' occur only inside JSON strings, where
    their \\u escapes mean the same, and without them a '</script>' or '<!--' in model
    code would end the block early. ensure_ascii also escapes U+2028/U+2029."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any]) -> str:
    """The page for a report_data() dict: pure, no I/O."""
    title = html.escape(f"aotc provenance: {data['model']} ({data['package']})")
    return _PAGE.format(title=title, css=_CSS, data=_script_json(data), js=_JS, heading=title)


def report_html(package_path: str, model: str | None = None) -> str:
    """The HTML text of the report for |model| (default: the package's only model)."""
    return render_html(report_data(package_path, model))


def write_report(package_path: str, out_path: str, model: str | None = None) -> None:
    """Writes the provenance report of a package to |out_path| (one HTML file)."""
    page = report_html(package_path, model)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(page)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head><body>
<header><b>{heading}</b> <span class="hint">choose a kernel, a graph node,
a code line or a model line</span></header>
<main>
<section class="panel" id="kernels-panel"><h2>kernels</h2>
<div class="list" id="kernels"></div><div id="info"></div></section>
<section class="panel"><h2>model source</h2><div class="body" id="source"></div></section>
<section class="panel"><h2>pre-grad graph</h2><div class="body" id="pre-grad"></div></section>
<section class="panel"><h2>generated code</h2><div class="body" id="code"></div></section>
<section class="panel"><h2>post-grad graph</h2><div class="body" id="post-grad"></div></section>
</main>
<script type="application/json" id="aotc-data">{data}</script>
<script>{js}</script>
</body></html>
"""

_CSS = """
body{margin:0;height:100vh;display:flex;flex-direction:column;font:13px system-ui,sans-serif;
 color:#222;background:#fafafa}
header{padding:6px 12px;border-bottom:1px solid #ccc;background:#fff}
.hint{color:#777;margin-left:1em}
main{flex:1;min-height:0;display:grid;gap:4px;padding:4px;
 grid-template-columns:minmax(240px,20%) 1fr 1fr;grid-template-rows:1fr 1fr}
#kernels-panel{grid-row:1/3}
.panel{display:flex;flex-direction:column;min-height:0;min-width:0;background:#fff;
 border:1px solid #ccc;border-radius:4px}
.panel h2{margin:0;padding:3px 8px;font-size:12px;background:#eee;border-bottom:1px solid #ccc}
.body,.list{flex:1;overflow:auto;position:relative}
.body{font:12px/1.45 ui-monospace,Menlo,Consolas,monospace;white-space:pre}
.file{position:sticky;top:0;background:#e8eef7;padding:1px 6px;font-weight:bold;z-index:1}
.ln{padding:0 6px;cursor:pointer;min-height:1.45em}
.ln:hover,.kernel:hover{background:#f0f0f0}
.no{display:inline-block;min-width:3.5em;color:#999;user-select:none}
.kernel{display:block;width:100%;text-align:left;border:0;border-bottom:1px solid #eee;
 background:none;padding:4px 8px;font:inherit;cursor:pointer}
.kernel .handle{font-weight:bold;font-family:ui-monospace,monospace}
.kernel .kind{margin-left:.5em;padding:0 4px;border-radius:3px;background:#ddd;font-size:11px}
.kind.pointwise{background:#d7f0d7}.kind.reduction{background:#d7e4f7}
.kind.template{background:#f7e0c8}.kind.extern{background:#ead7f0}
.kernel .bytes,.kernel .lines{display:block;color:#555;font-size:11px}
#info{max-height:40%;overflow:auto;border-top:1px solid #ccc;padding:6px 8px;font-size:12px}
#info dt{font-weight:bold;margin-top:4px}
#info dd{margin:0 0 0 1em;white-space:pre-wrap;word-break:break-word}
.highlight,.highlight:hover{background:#fff1a8}
.selected,.selected:hover{background:#ffd54a;box-shadow:inset 3px 0 #c79100}
"""

_JS = r"""
"use strict";
const D = JSON.parse(document.getElementById("aotc-data").textContent);
const $ = (id) => document.getElementById(id);
const KINDS = ["kernel", "pre", "post", "code", "source"];
const els = Object.fromEntries(KINDS.map((k) => [k, new Map()]));  // kind -> key -> elements
const codeKernels = new Map();  // "file:line" of generated code -> handles
const byHandle = new Map(D.kernels.map((k) => [k.handle, k]));
let lit = [];

function keep(kind, key, e) {
  if (!els[kind].has(key)) els[kind].set(key, []);
  els[kind].get(key).push(e);
}
function mk(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function size(n) {
  if (typeof n !== "number") return n == null ? "?" : String(n);
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? n.toFixed(1) + " " + units[i] : n + " B";
}
const lineKey = (file, line) => file + ":" + line;
const modelLines = (k) => k.source_lines.map((s) => s.file + ":" + s.line).join(", ");

function renderFiles(panel, files, kind, onPick) {
  const frag = document.createDocumentFragment();
  for (const [file, text] of Object.entries(files)) {
    frag.append(mk("div", "file", file));
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    lines.forEach((t, i) => {
      const d = mk("div", "ln");
      d.dataset.file = file;
      d.dataset.line = i + 1;
      d.append(mk("span", "no", String(i + 1)), mk("span", "tx", t));
      d.onclick = () => onPick(file, i + 1);
      keep(kind, lineKey(file, i + 1), d);
      frag.append(d);
    });
  }
  panel.append(frag);
}

function renderGraph(panel, lines, kind) {
  const frag = document.createDocumentFragment();
  for (const g of lines) {
    const d = mk("div", "ln", g.text);
    if (g.node !== null) {
      d.dataset.node = g.node;
      d.onclick = () => pickNode(kind, g);
      keep(kind, g.node, d);
    }
    frag.append(d);
  }
  panel.append(frag);
}

function renderKernels() {
  for (const k of D.kernels) {
    const b = mk("button", "kernel");
    b.dataset.handle = k.handle;
    b.append(mk("span", "handle", k.handle), mk("span", "kind " + k.kind, k.kind),
      mk("span", "bytes", "read " + size(k.bytes_read) + ", written " + size(k.bytes_written)),
      mk("span", "lines", modelLines(k) || "no model line"));
    b.title = k.post_grad_nodes.join(", ");
    b.onclick = () => pickKernel(k.handle);
    keep("kernel", k.handle, b);
    $("kernels").append(b);
    for (const line of codeLines(k)) {
      if (!codeKernels.has(line)) codeKernels.set(line, []);
      codeKernels.get(line).push(k.handle);
    }
  }
}

function codeLines(k) {  // the kernel's function and its call site
  const out = [];
  const c = k.code;
  if (c) for (let l = c.first_line; l <= c.last_line; l++) out.push(lineKey(c.file, l));
  if (k.call) out.push(lineKey(k.call.file, k.call.line));
  return out;
}

function kernelSets(handles) {
  const s = Object.fromEntries(KINDS.map((k) => [k, new Set()]));
  for (const h of handles) {
    const k = byHandle.get(h);
    s.kernel.add(h);
    k.pre_grad_nodes.forEach((n) => s.pre.add(n));
    k.post_grad_nodes.forEach((n) => s.post.add(n));
    codeLines(k).forEach((l) => s.code.add(l));
    k.source_lines.forEach((l) => s.source.add(lineKey(l.file, l.line)));
  }
  return s;
}

function show(sets, selected, info) {
  for (const e of lit) e.classList.remove("highlight", "selected");
  lit = [];
  for (const kind of KINDS) {
    for (const key of sets[kind]) {
      for (const e of els[kind].get(key) || []) { e.classList.add("highlight"); lit.push(e); }
    }
  }
  for (const e of selected) { e.classList.add("selected"); lit.push(e); }
  for (const id of ["kernels", "source", "pre-grad", "post-grad", "code"]) reveal($(id));
  $("info").replaceChildren(info);
}

function reveal(panel) {  // scroll the panel (not the page) to its first highlighted line
  const e = panel.querySelector(".selected") || panel.querySelector(".highlight");
  if (!e) return;
  const top = e.offsetTop, bottom = top + e.offsetHeight;
  if (top < panel.scrollTop || bottom > panel.scrollTop + panel.clientHeight) {
    panel.scrollTop = Math.max(0, top - panel.clientHeight / 3);
  }
}

function details(rows) {
  const dl = mk("dl");
  for (const [k, v] of rows) dl.append(mk("dt", "", k), mk("dd", "", v));
  return dl;
}

function pickKernel(handle) {
  const k = byHandle.get(handle);
  const where = (w) => (w ? w.file + ":" + (w.line || w.first_line + "-" + w.last_line) : "?");
  show(kernelSets([handle]), els.kernel.get(handle), details([
    ["kernel " + handle, k.kernel + " (" + k.kind + ", " + k.device + ")"],
    ["bytes", "read " + size(k.bytes_read) + ", written " + size(k.bytes_written)],
    ["post-grad nodes", k.post_grad_nodes.join(", ")],
    ["pre-grad nodes", k.pre_grad_nodes.join(", ")],
    ["model lines", k.source_lines.map((s) => s.file + ":" + s.line + "  " + s.code).join("\n")],
    ["code", where(k.code) + ", called at " + where(k.call)],
  ]));
  history.replaceState(null, "", "#" + encodeURIComponent(handle));
}

function pickNode(kind, g) {
  const handles = (kind === "post" ? D.post_kernels : D.pre_kernels)[g.node] || [];
  const s = kernelSets(handles);
  s.pre = new Set(kind === "pre" ? [g.node] : D.post_to_pre[g.node] || []);
  s.post = new Set(kind === "post" ? [g.node] : D.pre_to_post[g.node] || []);
  if (g.file !== null) s.source = new Set([lineKey(g.file, g.line)]);
  show(s, els[kind].get(g.node), details([
    [(kind === "post" ? "post-grad" : "pre-grad") + " node", g.text.trim()],
    ["computed by", handles.join(", ") || "no kernel"],
  ]));
}

function pickCode(file, line) {
  const handles = codeKernels.get(lineKey(file, line));
  if (handles) pickKernel(handles[0]);
}

function pickSource(file, line) {
  const key = lineKey(file, line);
  const at = (k) => k.source_lines.some((l) => lineKey(l.file, l.line) === key);
  const handles = D.kernels.filter(at);
  const s = kernelSets(handles.map((k) => k.handle));
  s.source = new Set([key]);
  for (const [kind, lines] of [["pre", D.pre_grad], ["post", D.post_grad]]) {
    for (const g of lines) {
      if (g.node !== null && g.file === file && g.line === line) s[kind].add(g.node);
    }
  }
  show(s, els.source.get(key), details([
    ["model line " + key, ""], ["kernels", handles.map((k) => k.handle).join(", ") || "none"],
  ]));
}

renderKernels();
renderFiles($("source"), D.sources, "source", pickSource);
renderFiles($("code"), D.code, "code", pickCode);
renderGraph($("pre-grad"), D.pre_grad, "pre");
renderGraph($("post-grad"), D.post_grad, "post");
const start = decodeURIComponent(location.hash.slice(1));
if (byHandle.has(start)) pickKernel(start);
"""
