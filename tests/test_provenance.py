"""Provenance (docs/PROVENANCE.md): every kernel traced to its graph nodes and
to exact lines of the model's file, inside the package.

The models live in tests/fixtures/provenance_models.py; the expected lines
are found from "# @tag" markers there, and the expected kernels and nodes are
worked out by hand below (not read back from aotc's own output).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import packager
from aot.export import compile_module, export_model
from aot.options import ExportOptions
from tests.fixtures import provenance_models as models

MODEL_FILE = Path(models.__file__).resolve()
REPO_ROOT = Path(__file__).resolve().parent.parent
_MARKER = re.compile(r"#\s*@(?P<tag>[\w.]+)\s*$")


def line_of(tag: str) -> int:
    """The 1-based line of MODEL_FILE that carries the marker "# @<tag>"."""
    for k, text in enumerate(MODEL_FILE.read_text().splitlines(), start=1):
        match = _MARKER.search(text)
        if match and match["tag"] == tag:
            return k
    raise AssertionError(f"no marker @{tag} in {MODEL_FILE}")


class Exported:
    """A compiled package and its provenance files, read back from the zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        pkg = packager.Package(path)
        (self.name,) = pkg.models
        self.dir = pkg.layout.model_dir(self.name)
        self.files = {
            n[len(self.dir) :]: pkg.read(n) for n in pkg.index.by_name if n.startswith(self.dir)
        }
        self.info: dict[str, Any] = json.loads(self.files["kernel_information.json"])
        self.mappings: dict[str, Any] = json.loads(self.files["provenance/node_mappings.json"])

    def text(self, name: str) -> str:
        return self.files[name].decode()

    def lines_of(self, handle: str) -> list[tuple[str, int]]:
        return [(s["file"], s["line"]) for s in self.info[handle]["source_lines"]]


def _compile(module: torch.nn.Module, inputs: tuple[Any, ...], path: Path, **options: Any) -> Path:
    return compile_module(module.eval(), inputs, path, ExportOptions(**options), name=path.stem)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("provenance")
    made = {
        "chain": _compile(models.PointwiseChain(), (torch.randn(4, 8),), out / "chain.pt2"),
        "softmax": _compile(models.SoftmaxDim0(), (torch.randn(16, 32),), out / "softmax.pt2"),
        "cosine": _compile(models.Cosine(), (torch.randn(16, 32),), out / "cosine.pt2"),
        "nested": _compile(models.Nested(), (torch.randint(0, 10, (2, 5)),), out / "nested.pt2"),
    }
    return {k: Exported(v) for k, v in made.items()}


FILE = MODEL_FILE.name


def test_fused_kernel_from_several_lines(packages):
    """x.cos(), .sin() * 2 and + 1 on three lines: one pointwise kernel that
    names all three lines, in order, and the four post-grad nodes."""
    p = packages["chain"]
    assert list(p.info) == ["kernel0:0"]
    k = p.info["kernel0:0"]
    assert k["kind"] == "pointwise" and k["device"] == "cpu" and k["kernel"] == "kernel0"
    assert p.lines_of("kernel0:0") == [
        (FILE, line_of("chain.cos")),
        (FILE, line_of("chain.sin")),
        (FILE, line_of("chain.add")),
    ]
    assert k["post_grad_nodes"] == ["cos", "sin", "mul", "add"]
    assert k["pre_grad_nodes"] == ["cos", "sin", "mul", "add"]
    assert [s["code"] for s in k["source_lines"]] == [
        "y = x.cos()  # @chain.cos",
        "z = y.sin() * 2.0  # @chain.sin",
        "return z + 1.0  # @chain.add",
    ]
    # 4x8 float32 read once and written once.
    assert (k["bytes_read"], k["bytes_written"]) == (4 * 8 * 4, 4 * 8 * 4)


def test_stack_traces_end_at_the_user_frame(packages):
    for p in packages.values():
        for handle, k in p.info.items():
            assert k["stack_traces"], handle
            for trace in k["stack_traces"]:
                frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
                assert frames, trace
                innermost = Path(frames[-1][0]).resolve()
                assert innermost == MODEL_FILE, (handle, trace)  # never torch/nn


def test_decomposition_split_into_two_kernels(packages):
    """softmax over dim 0: a reduction kernel (max and sum over the outer dim)
    and a pointwise kernel, both from aten.softmax on one line; cosine
    similarity: many post-grad nodes from one pre-grad node, one kernel."""
    p = packages["softmax"]
    softmax = [h for h, k in p.info.items() if "softmax" in k["pre_grad_nodes"]]
    assert softmax == list(p.info) and len(softmax) == 2
    assert [p.info[h]["kind"] for h in softmax] == ["reduction", "pointwise"]
    for h in softmax:
        assert p.info[h]["pre_grad_nodes"] == ["softmax"]
        assert p.info[h]["post_grad_nodes"] == ["_softmax"]
        assert p.lines_of(h) == [(FILE, line_of("softmax"))]
    assert p.mappings["preToPost"]["softmax"] == ["_softmax"]
    assert sorted(p.mappings["postToCppCode"]["_softmax"]) == sorted(softmax)

    p = packages["cosine"]
    assert list(p.info) == ["kernel0:0"]
    cosine = ["kernel0:0"]
    k = p.info["kernel0:0"]
    assert k["kind"] == "reduction"
    assert len(k["post_grad_nodes"]) > 3  # norms, clamps, divisions, mul, sum
    assert k["pre_grad_nodes"] == ["flip", "cosine_similarity"]
    assert p.lines_of(cosine[0]) == [(FILE, line_of("cosine"))]
    for node in k["post_grad_nodes"]:
        if node != "flip":
            assert p.mappings["postToPre"][node] == ["cosine_similarity"], node


def test_gemm_with_bias_epilogue_and_nested_modules(packages):
    """Nested.forward -> Block.forward -> nn.Linear: the addmm template (bias
    added in the GEMM's store, the gelu after it fused into its epilogue)
    names Block.forward's lines, not the caller's (nested.block) and not
    torch/nn/modules/linear.py."""
    p = packages["nested"]
    (gemm,) = [h for h, k in p.info.items() if k["kind"] == "template"]
    k = p.info[gemm]
    assert k["pre_grad_nodes"] == ["linear", "gelu"]
    assert "addmm" in k["post_grad_nodes"] and k["post_grad_nodes"][-1] == "gelu"
    assert p.lines_of(gemm) == [(FILE, line_of("block.fc")), (FILE, line_of("block.gelu"))]
    # The full traces still show the caller's frame, outermost first.
    for trace, inner in zip(k["stack_traces"], ("block.fc", "block.gelu"), strict=True):
        lines = [int(n) for _, n in re.findall(r'File "([^"]+)", line (\d+)', trace)]
        assert lines == [line_of("nested.block"), line_of(inner)]
    # 2x5 ids -> embedding [10, 16] -> [10, 16] @ [16, 32] + bias [32], gelu'd
    # in place: written once.
    assert k["bytes_written"] == 10 * 32 * 4
    gelu = [h for h, x in p.info.items() if "gelu" in x["post_grad_nodes"]]
    assert gelu == [gemm]
    emb = [h for h, x in p.info.items() if "embedding" in x["post_grad_nodes"]]
    assert len(emb) == 1 and p.lines_of(emb[0]) == [(FILE, line_of("nested.emb"))]


def test_node_mappings_are_consistent(packages):
    for p in packages.values():
        m = p.mappings
        assert m["version"] == 2.0
        assert m["cppCodeToPost"] == {h: k["post_grad_nodes"] for h, k in p.info.items()}
        for handle, nodes in m["cppCodeToPost"].items():
            for node in nodes:
                assert handle in m["postToCppCode"][node]
        for pre, posts in m["preToPost"].items():
            for post in posts:
                assert pre in m["postToPre"][post]
        for k in p.info.values():
            expected = {pre for n in k["post_grad_nodes"] for pre in m["postToPre"].get(n, [])}
            assert set(k["pre_grad_nodes"]) == expected


def test_graph_text_sources_and_code_spans(packages):
    p = packages["nested"]
    assert p.files["provenance/source/" + FILE] == MODEL_FILE.read_bytes()
    pre, post = p.text("provenance/pre_grad_graph.txt"), p.text("provenance/post_grad_graph.txt")
    assert re.search(
        rf"^linear = aten\.linear\.default\(.*# {FILE}:{line_of('block.fc')}$", pre, re.M
    )
    assert re.search(r"^addmm = aten\.addmm\.default\(", post, re.M)
    for k in p.info.values():
        for node in k["post_grad_nodes"]:
            assert re.search(rf"^{node} = ", post, re.M), node
        for node in k["pre_grad_nodes"]:
            assert re.search(rf"^{node} = ", pre, re.M), node
    for handle, k in p.info.items():
        code = p.text(k["code"]["file"]).splitlines()
        first, last = k["code"]["first_line"], k["code"]["last_line"]
        assert code[first - 1] == f"// {handle}"
        assert any(line.startswith(f"static int32_t {k['kernel']}(") for line in code[first:last])
        assert code[last - 1] == "}"
        model_cc = p.text(k["call"]["file"]).splitlines()
        call = model_cc[k["call"]["line"] - 1]
        assert f"run_{k['kernel']}(ctx)" in call
        assert model_cc[k["call"]["line"] - 2].strip() == f"// {handle}"


def test_kernel_error_names_handle_and_model_line(packages, native_build):
    """An embedding id past the table: OUT_OF_RANGE, and the message starts
    with the embedding kernel's handle and its model line and code."""
    from aot import runtime

    p = packages["nested"]
    emb = next(h for h, k in p.info.items() if "embedding" in k["post_grad_nodes"])
    ids = torch.randint(0, 10, (2, 5))
    with runtime.load(p.path) as compiled:
        bad = ids.clone()
        bad[1, 3] = 10
        with pytest.raises(runtime.AotcError) as error:
            compiled(bad)
        assert error.value.code == "OUT_OF_RANGE"
        where = f"{FILE}:{line_of('nested.emb')}: x = self.emb(ids)  # @nested.emb"
        assert f"{emb} ({where}): index 10 out of range [0, 10)" in str(error.value)
        compiled(ids)  # still works


def test_no_provenance(tmp_path, native_build):
    """--no-provenance: no provenance files, the same kernels and handles in
    the sources, and run-time errors still name the handle."""
    from aot import runtime

    path = _compile(
        models.Nested(), (torch.randint(0, 10, (2, 5)),), tmp_path / "bare.pt2", provenance=False
    )
    p = packages_without_provenance = packager.Package(path)
    (name,) = p.models
    names = [n for n in p.index.by_name if n.startswith(p.layout.model_dir(name))]
    assert not [n for n in names if "provenance/" in n or n.endswith("kernel_information.json")]
    assert any(n.endswith("src/model.cc") for n in names)
    del packages_without_provenance
    with runtime.load(path) as compiled:
        bad = torch.randint(0, 10, (2, 5))
        bad[0, 0] = 12
        with pytest.raises(runtime.AotcError) as error:
            compiled(bad)
        message = str(error.value)
        assert re.search(r"kernel\d+:0: index 12 out of range \[0, 10\)", message), message
        assert FILE not in message


def test_model_file_export_records_the_examples_lines(tmp_path):
    """`aotc export examples/mlp.py`: every kernel names mlp.py:16 (the one
    line of MLP.forward), never torch/nn/modules/*.py, and the package holds
    mlp.py itself."""
    path = export_model(
        REPO_ROOT / "examples" / "mlp.py", tmp_path / "mlp.pt2", ExportOptions(), quiet=True
    )
    p = Exported(path)
    mlp = REPO_ROOT / "examples" / "mlp.py"
    line = next(
        k for k, text in enumerate(mlp.read_text().splitlines(), 1) if "return self.fc2(" in text
    )
    assert len(p.info) == 3
    for k in p.info.values():
        assert [(s["file"], s["line"]) for s in k["source_lines"]] == [("mlp.py", line)]
    assert [k["kind"] for k in p.info.values()] == ["template", "reduction", "template"]
    assert p.files["provenance/source/mlp.py"] == mlp.read_bytes()


def test_cli_export_inspect_and_html(tmp_path):
    """`aotc export` with and without --no-provenance, then `aotc inspect`:
    the kernels table with mlp.py's line, --kernel with its code, --html."""
    import subprocess
    import sys

    def aotc(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "aot.cli", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    with_prov, without = tmp_path / "mlp.pt2", tmp_path / "bare.pt2"
    aotc("export", "examples/mlp.py", "-o", str(with_prov), "--quiet")
    aotc("export", "examples/mlp.py", "-o", str(without), "--quiet", "--no-provenance")
    table = aotc("inspect", str(with_prov))
    assert re.search(r"kernel0:0\s+reduction\s+cpu\s+18\.0 KiB\s+gelu, native_layer_norm", table)
    assert "mlp.py:16  return self.fc2(self.norm(self.act(self.fc1(x))))" in table
    one = aotc("inspect", str(with_prov), "--kernel", "extern0:0")
    assert "static int32_t extern0(const aotc_rt::KernelContext& ctx) {" in one
    assert "kn::gemm<T>" in one
    assert "provenance none" in aotc("inspect", str(without))
    report = tmp_path / "report.html"
    aotc("inspect", str(with_prov), "--html", str(report))
    html = report.read_text()
    assert "kernel0:0" in html and "<script" in html and "http" not in html.split("<body")[1]
