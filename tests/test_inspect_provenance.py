"""`aotc inspect` and provenance (docs/PROVENANCE.md): the kernels table, --json,
--kernel with its generated code, --html, tolerance of malformed files; no torch.

Packages are synthetic: PackageWriter with kernel_information.json, provenance/* and
src/ as an export with provenance writes them; the library bytes are arbitrary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import pytest

from aot.cli import main
from packager import PackageWriter, inspect_package, parse_kernel_information

REPO = Path(__file__).resolve().parents[1]
MODEL_LINE = "return self.fc2(self.norm(self.act(self.fc1(x))))"
TRACE = f'File "/home/me/mlp.py", line 16, in forward\n    {MODEL_LINE}'


# ---- a synthetic package --------------------------------------------------------------


def kernels_source() -> tuple[str, dict[str, tuple[int, int]]]:
    """src/kernels_0.cc and, per kernel, its (first, last) lines."""
    lines = ['#include "aotc_cpu.h"', ""]
    spans = {}
    for name, body in (
        ("kernel0", ["float acc = 0.f;", "for (int64_t i = 0; i < n; ++i) acc += x[i];"]),
        ("kernel1", ["y[i] = x[i] > 0.f ? x[i] : 0.f;"]),
        ("extern0", ["aotc::cpu::gemm(ctx);"]),
    ):
        first = len(lines) + 1
        lines += [f"// {name}:0", f"int32_t {name}(const KernelContext& ctx) {{"]
        lines += ["  " + b for b in body] + ["  return 0;", "}", ""]
        spans[name] = (first, len(lines) - 1)
    return "\n".join(lines), spans


MODEL_CC = "\n".join(
    ['#include "aotc_cpu.h"', "", "int32_t run(const KernelContext& ctx) {"]
    + [f"  AOTC_CALL({h.split(':')[0]}(ctx));  // {h}" for h in
       ("kernel0:0", "kernel1:0", "extern0:0", "kernel1:1")]
    + ["  return 0;", "}", ""]
)  # fmt: skip
CALL_LINES = {"kernel0:0": 4, "kernel1:0": 5, "extern0:0": 6, "kernel1:1": 7}


def record(handle: str, **fields: Any) -> dict[str, Any]:
    kernel = handle.split(":")[0]
    first, last = kernels_source()[1][kernel]
    out = {
        "stack_traces": [TRACE],
        "post_grad_nodes": [],
        "pre_grad_nodes": [],
        "kernel": kernel,
        "kind": "pointwise",
        "device": "cpu",
        "bytes_read": 1024,
        "bytes_written": 1024,
        "source_lines": [
            {"file": "mlp.py", "path": "/home/me/mlp.py", "line": 16, "function": "forward",
             "code": MODEL_LINE}
        ],
        "code": {"file": "src/kernels_0.cc", "first_line": first, "last_line": last},
        "call": {"file": "src/model.cc", "line": CALL_LINES[handle]},
    }  # fmt: skip
    out.update(fields)
    return out


def kernel_information() -> dict[str, Any]:
    norm_line = {"file": "mlp.py", "path": "/home/me/mlp.py", "line": 12,
                 "function": "__init__", "code": "self.norm = nn.LayerNorm(16)"}  # fmt: skip
    return {
        "kernel0:0": record(
            "kernel0:0",
            post_grad_nodes=["gelu", "native_layer_norm", "getitem"],
            pre_grad_nodes=["gelu", "layer_norm"],
            kind="reduction",
            bytes_read=10240,
            bytes_written=8192,
            source_lines=[record("kernel0:0")["source_lines"][0], norm_line],
        ),
        "kernel1:0": record("kernel1:0", post_grad_nodes=["relu"], pre_grad_nodes=["relu"]),
        "extern0:0": record(
            "extern0:0",
            post_grad_nodes=["addmm"],
            pre_grad_nodes=["linear"],
            kind="template",
            bytes_read="1024*s0",
            bytes_written=4096,
        ),
        "kernel1:1": record("kernel1:1", post_grad_nodes=["relu_1"], pre_grad_nodes=["relu_1"]),
    }


def provenance_files(info: Any) -> dict[str, Any]:
    source, _ = kernels_source()
    return {
        "kernel_information.json": info if isinstance(info, str) else json.dumps(info),
        "provenance/node_mappings.json": json.dumps(
            {
                "preToPost": {},
                "postToPre": {},
                "cppCodeToPost": {},
                "postToCppCode": {},
                "version": 2.0,
            }
        ),  # fmt: skip
        "provenance/pre_grad_graph.txt": "x = placeholder -> float32[4, 8]\n",
        "provenance/post_grad_graph.txt": "x = placeholder -> float32[4, 8]\n",
        "provenance/source/mlp.py": "import torch\n",
        "src/kernels_0.cc": source,
        "src/model.cc": MODEL_CC,
    }


def write_package(path: Path, files: dict[str, Any]) -> Path:
    with PackageWriter(path) as w:
        w.add_model(
            name="mlp",
            library=b"\x7fELF not a real library",
            inputs=[{"name": "x", "dtype": "float32", "shape": ["s0", 8]}],
            outputs=[{"name": "y", "dtype": "float32", "shape": ["s0", 16]}],
            target={"device": "cpu", "isa": "x86-64-v3", "arch": None, "min_driver": 0},
            abi={"major": 1, "minor": 0},
            files=files,
        )
    return path


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prov") / "mlp.pt2"
    return write_package(out, provenance_files(kernel_information()))


def aotc(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python3 -m aot.cli ARGS` in a child process where torch cannot be imported."""
    code = """
        import runpy, sys
        sys.modules["torch"] = None
        sys.argv = ["aotc", *sys.argv[1:]]
        runpy.run_module("aot.cli", run_name="__main__")
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def numbered(first: int, text: str) -> list[str]:
    """Lines as --kernel prints code: 4 spaces, the line number, 2 spaces, the text."""
    lines = text.split("\n")
    width = len(str(first + len(lines) - 1))
    return [f"    {first + i:>{width}}  {line}".rstrip() for i, line in enumerate(lines)]


def code_of(kernel: str) -> tuple[int, str]:
    source, spans = kernels_source()
    first, last = spans[kernel]
    return first, "\n".join(source.split("\n")[first - 1 : last])


# ---- the kernels table ----------------------------------------------------------------


def test_table_shows_every_call(pkg: Path) -> None:
    proc = aotc("inspect", pkg)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # The package summary is still there.
    assert "model mlp" in out and "x: float32[s0, 8]" in out and "entries" in out
    assert "provenance 4 kernel calls of 3 kernels (kernel_information.json)" in out
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if ":0 " in line or ":1 " in line
    }
    assert rows["kernel0:0"][:5] == ["kernel0:0", "reduction", "cpu", "18.0", "KiB"]
    assert rows["kernel0:0"][5:] == ["gelu,", "native_layer_norm,", "getitem"]
    assert rows["kernel1:0"][:5] == ["kernel1:0", "pointwise", "cpu", "2.0", "KiB"]
    assert rows["kernel1:1"][-1] == "relu_1"
    assert "extern0:0  template   cpu     1024*s0 + 4096  addmm" in out
    assert f"mlp.py:16  {MODEL_LINE}" in out
    assert "mlp.py:12  self.norm = nn.LayerNorm(16)" in out
    assert "warning" not in out


def test_table_layout(pkg: Path) -> None:
    from packager import format_inspection

    text = format_inspection(inspect_package(pkg))
    table = text[text.index("    handle") : text.index("\nentries\n")].splitlines()
    assert table[:4] == [
        "    handle     kind       device  bytes           fused nodes",
        "    kernel0:0  reduction  cpu     18.0 KiB        gelu, native_layer_norm, getitem",
        f"               mlp.py:16  {MODEL_LINE}",
        "               mlp.py:12  self.norm = nn.LayerNorm(16)",
    ]


def test_table_is_fast(pkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["inspect", str(pkg)]) == 0
    assert main(["inspect", str(pkg), "--kernel", "kernel1"]) == 0
    assert time.perf_counter() - start < 1.0


# ---- --json ---------------------------------------------------------------------------


def test_json_holds_kernel_information_as_stored(pkg: Path) -> None:
    proc = aotc("inspect", "--json", pkg)
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["models"]["mlp"]
    assert model["provenance"] == kernel_information()
    assert list(model["provenance"]) == ["kernel0:0", "kernel1:0", "extern0:0", "kernel1:1"]
    assert model["provenance_problems"] == []
    assert "provenance/source/mlp.py" in model["files"]


# ---- --kernel -------------------------------------------------------------------------


def test_kernel_by_handle(pkg: Path) -> None:
    proc = aotc("inspect", pkg, "--kernel", "kernel0:0")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "kernel0:0  (model mlp)"
    text = proc.stdout
    for expected in (
        "  kernel           kernel0",
        "  kind             reduction",
        "  device           cpu",
        "  bytes            18.0 KiB (read 10240, written 8192 bytes)",
        "  post-grad nodes  gelu, native_layer_norm, getitem",
        "  pre-grad nodes   gelu, layer_norm",
        f"  model lines      mlp.py:16  {MODEL_LINE}",
        "                     /home/me/mlp.py, in forward",
        "                   mlp.py:12  self.norm = nn.LayerNorm(16)",
        '    File "/home/me/mlp.py", line 16, in forward',
        f"        {MODEL_LINE}",
    ):
        assert expected in out, expected
    first, code = code_of("kernel0")
    last = kernels_source()[1]["kernel0"][1]
    at = out.index(f"  code             src/kernels_0.cc lines {first}-{last}")
    n = last - first + 1
    assert out[at + 1 : at + 1 + n] == numbered(first, code)
    assert out[at + 1].endswith("// kernel0:0") and out[at + n] == f"    {last}  }}"
    assert out[at + 1 + n :] == [
        "  call             src/model.cc line 4",
        "    4    AOTC_CALL(kernel0(ctx));  // kernel0:0",
    ]
    assert "kernel1" not in text


def test_kernel_by_name_shows_all_its_calls(pkg: Path) -> None:
    proc = aotc("inspect", pkg, "--kernel", "kernel1")
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [
        "kernel1:0  (model mlp)",
        "kernel1:1  (model mlp)",
    ]
    first, code = code_of("kernel1")
    for block, handle in zip(blocks, ("kernel1:0", "kernel1:1"), strict=True):
        lines = block.splitlines()
        assert all(n in lines for n in numbered(first, code))
        assert f"    {CALL_LINES[handle]}    AOTC_CALL(kernel1(ctx));  // {handle}" in lines


def test_kernel_json_has_source(pkg: Path) -> None:
    proc = aotc("inspect", pkg, "--kernel", "extern0:0", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["kernel"] == "extern0:0" and len(d["calls"]) == 1
    call = d["calls"][0]
    stored = kernel_information()["extern0:0"]
    assert {k: call[k] for k in stored} == stored
    assert call["model"] == "mlp" and call["handle"] == "extern0:0"
    assert call["source"] == code_of("extern0")[1]
    assert call["call_source"] == "  AOTC_CALL(extern0(ctx));  // extern0:0"
    assert call["problems"] == []


def test_unknown_kernel_exits_2_listing_handles(pkg: Path) -> None:
    proc = aotc("inspect", pkg, "--kernel", "kernel9")
    assert proc.returncode == 2
    assert proc.stderr.startswith("aotc: error: ") and "Traceback" not in proc.stderr
    assert "'kernel9'" in proc.stderr
    assert "kernel0:0, kernel1:0, extern0:0, kernel1:1" in proc.stderr


def test_kernel_with_missing_code_is_shown_with_a_warning(tmp_path: Path) -> None:
    info = kernel_information()
    info["kernel0:0"]["code"] = {"file": "src/kernels_0.cc", "first_line": 900, "last_line": 901}
    info["kernel1:0"]["code"]["file"] = "src/absent.cc"
    files = provenance_files(info)
    path = write_package(tmp_path / "p.pt2", files)
    d: dict[str, Any] = {}
    for handle in ("kernel0:0", "kernel1:0"):
        proc = aotc("inspect", path, "--kernel", handle, "--json")
        assert proc.returncode == 0, proc.stderr
        d[handle] = json.loads(proc.stdout)["calls"][0]
        assert d[handle]["source"] is None and d[handle]["call_source"]
    assert "not line 900" in d["kernel0:0"]["problems"][0]
    assert "src/absent.cc" in d["kernel1:0"]["problems"][0]
    proc = aotc("inspect", path, "--kernel", "kernel0")
    assert proc.returncode == 0, proc.stderr
    assert "  warning: src/kernels_0.cc has" in proc.stdout


# ---- malformed files, no provenance ---------------------------------------------------


def _malformed() -> dict[str, Any]:
    good = kernel_information()
    missing = {h: dict(r) for h, r in good.items()}
    del missing["kernel0:0"]["kind"], missing["kernel1:0"]["source_lines"]
    wrong = {h: dict(r) for h, r in good.items()}
    wrong["kernel0:0"].update(bytes_read=[1], post_grad_nodes="gelu", code={"file": 3})
    wrong["kernel1:0"].update(source_lines=[{"file": "mlp.py"}, 7], kind=None, device=5)
    return {
        "not an object": json.dumps([1, 2]),
        "not JSON": "{oops",
        "NaN": '{"kernel0:0": {"bytes_read": NaN}}',
        "entry not an object": json.dumps({"kernel0:0": "gelu", "kernel1:0": good["kernel1:0"]}),
        "missing keys": missing,
        "wrong types": wrong,
        "empty": {},
    }


@pytest.mark.parametrize("case", list(_malformed()))
def test_malformed_kernel_information_is_tolerated(case: str, tmp_path: Path) -> None:
    path = write_package(tmp_path / "bad.pt2", provenance_files(_malformed()[case]))
    proc = aotc("inspect", path)
    assert proc.returncode == 0, proc.stderr
    assert "model mlp" in proc.stdout and "x: float32[s0, 8]" in proc.stdout
    warnings = [line for line in proc.stdout.splitlines() if "warning:" in line]
    assert len(warnings) == (0 if case == "empty" else 1), proc.stdout
    proc = aotc("inspect", path, "--json")
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["models"]["mlp"]
    assert bool(model["provenance_problems"]) == (case != "empty")


def test_malformed_fields_keep_the_rest(tmp_path: Path) -> None:
    path = write_package(tmp_path / "bad.pt2", provenance_files(_malformed()["wrong types"]))
    out = aotc("inspect", path).stdout
    row = next(line for line in out.splitlines() if line.startswith("    kernel0:0"))
    assert row.split()[:4] == ["kernel0:0", "reduction", "cpu", "?"]
    assert "warning: kernel_information.json: kernel0:0: bytes_read is an array" in out
    assert "(and 5 more)" in out
    # kernel1:0's source_lines are all bad: its line comes from its stack trace.
    at = next(i for i, line in enumerate(out.splitlines()) if line.startswith("    kernel1:0"))
    assert out.splitlines()[at + 1].strip() == "mlp.py:16"
    proc = aotc("inspect", path, "--kernel", "kernel0:0")
    assert proc.returncode == 0, proc.stderr
    assert "  code " not in proc.stdout and "  call             src/model.cc" in proc.stdout


def test_entry_that_is_not_an_object(tmp_path: Path) -> None:
    files = provenance_files(json.dumps({"kernel0:0": "gelu"}))
    path = write_package(tmp_path / "bad.pt2", files)
    proc = aotc("inspect", path, "--kernel", "kernel0", "--json")
    assert proc.returncode == 0, proc.stderr
    call = json.loads(proc.stdout)["calls"][0]
    assert call["handle"] == "kernel0:0" and call["source"] is None
    assert call["problems"] == ["kernel0:0: is a string, expected an object"]


def test_parse_reports_each_problem() -> None:
    calls, problems = parse_kernel_information(_malformed()["wrong types"])
    assert [c.handle for c in calls] == list(kernel_information())
    assert calls[0].bytes_read is None and calls[0].bytes_written == 8192
    assert calls[0].post_grad_nodes == () and calls[0].code is None
    assert calls[1].source_lines == () and calls[1].kind is None and calls[1].device is None
    assert len(problems) == 6, problems


def test_no_provenance(tmp_path: Path) -> None:
    files = {"src/model.cc": MODEL_CC}
    path = write_package(tmp_path / "plain.pt2", files)
    proc = aotc("inspect", path)
    assert proc.returncode == 0, proc.stderr
    assert "  provenance none (exported with --no-provenance)" in proc.stdout
    assert "entries" in proc.stdout and "warning" not in proc.stdout
    model = json.loads(aotc("inspect", path, "--json").stdout)["models"]["mlp"]
    assert model["provenance"] is None and model["provenance_problems"] == []
    proc = aotc("inspect", path, "--kernel", "kernel0:0")
    assert proc.returncode == 2 and "--no-provenance" in proc.stderr


# ---- --html ---------------------------------------------------------------------------


def test_html_calls_the_report_writer(
    pkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []
    fake = types.ModuleType("packager.provenance_report")
    fake.write_report = lambda package, out: calls.append((package, out))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "packager.provenance_report", fake)
    out = str(tmp_path / "report.html")
    assert main(["inspect", str(pkg), "--html", out]) == 0
    assert calls == [(str(pkg), out)]
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert main(["inspect", str(pkg), "--html", out, "--json"]) == 2


def test_html_report_without_torch(pkg: Path, tmp_path: Path) -> None:
    pytest.importorskip("packager.provenance_report")
    out = tmp_path / "report.html"
    proc = aotc("inspect", pkg, "--html", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}\n" and out.stat().st_size > 0
