"""The frontend: loading model.py, capture on CPU, aotc's decompositions,
refusals and node locations. No native build; two examples exported fully."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from aot.frontend import (
    ExportedModel,
    FrontendError,
    aotc_decomposition_table,
    capture_module,
    describe_node,
    node_location,
    run_frontend,
)
from aot.frontend.loader import sanitize_name
from aot.options import ExportOptions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
aten = torch.ops.aten


def _ops(program: torch.export.ExportedProgram) -> set[object]:
    return {n.target for n in program.graph.nodes if n.op == "call_function"}


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _line_of(path: Path, text: str) -> int:
    """1-based number of the only line of |path| containing |text|."""
    found = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def mlp() -> ExportedModel:
    return run_frontend(EXAMPLES / "mlp.py", ExportOptions())


@pytest.fixture(scope="module")
def gpt() -> ExportedModel:
    return run_frontend(EXAMPLES / "gpt.py", ExportOptions())


# --- examples ---------------------------------------------------------------


@pytest.mark.parametrize("which", ["mlp", "gpt"])
def test_example_exports_and_matches_eager(which: str, request: pytest.FixtureRequest) -> None:
    exported: ExportedModel = request.getfixturevalue(which)
    assert exported.name == which
    assert exported.source_path == (EXAMPLES / f"{which}.py").resolve()
    assert not exported.module.training
    expected = exported.module(*exported.example_inputs)
    got = exported.program.module()(*exported.example_inputs)
    torch.testing.assert_close(got, expected)


def test_mlp_decomposed_ops(mlp: ExportedModel) -> None:
    ops = _ops(mlp.program)
    assert {aten.addmm.default, aten.gelu.default, aten.native_layer_norm.default} <= ops
    assert aten.linear.default not in ops
    # run_decompositions left the captured ("pre-grad") graph as it was.
    assert aten.linear.default in _ops(mlp.pre_grad)


def test_gpt_keeps_attention_and_embedding(gpt: ExportedModel) -> None:
    ops = _ops(gpt.program)
    assert aten.scaled_dot_product_attention.default in ops
    assert aten.embedding.default in ops
    assert not any("flash_attention" in str(op) or "_softmax" in str(op) for op in ops)


def test_decomposition_table() -> None:
    table = aotc_decomposition_table()
    assert aten.scaled_dot_product_attention.default not in table
    assert aten.linear.default in table  # linear -> permute + addmm
    for op in (aten.native_layer_norm, aten.gelu, aten.addmm, aten.convolution, aten.embedding):
        assert op.default not in table
    assert aten.scaled_dot_product_attention.default in torch.export.default_decompositions()


# --- node locations -----------------------------------------------------------


def test_node_location_names_the_model_line(mlp: ExportedModel) -> None:
    params = mlp.program.graph_signature.inputs_to_parameters
    (fc1,) = [
        n
        for n in mlp.program.graph.nodes
        if n.target == aten.addmm.default and params.get(n.args[0].name) == "fc1.bias"
    ]
    path = EXAMPLES / "mlp.py"
    line = _line_of(path, "self.fc1(x)")
    assert line == 16  # the forward's one line in examples/mlp.py
    code = path.read_text().splitlines()[line - 1].strip()
    assert node_location(fc1, mlp.source_path) == f"mlp.py:{line} ({code})"
    # Without the model file, the innermost frame outside torch is the same.
    assert node_location(fc1, None) == f"mlp.py:{line} ({code})"


def test_node_location_without_stack_trace() -> None:
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    node = graph.call_function(aten.relu.default, (x,))
    assert node_location(node, Path("model.py")) == "(no stack trace)"


def test_node_location_of_a_torch_module() -> None:
    exported = capture_module(nn.Linear(4, 2).eval(), (torch.randn(3, 4),), ExportOptions())
    addmm = next(n for n in exported.program.graph.nodes if n.target == aten.addmm.default)
    assert node_location(addmm, None).startswith("torch/nn/modules/linear.py:")


def test_describe_node(mlp: ExportedModel) -> None:
    out = mlp.program.graph.output_node().args[0][0]
    text = describe_node(out)
    assert text.startswith(f"node '{out.name}' = aten.addmm.default(")
    assert text.endswith("-> float32[8, 16]")
    getitem = next(n for n in mlp.program.graph.nodes if n.name == "getitem")
    assert "operator.getitem(native_layer_norm, 0)" in describe_node(getitem)


# --- refusals -------------------------------------------------------------------


def test_training_mode_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    model[1].train()
    with pytest.raises(FrontendError) as info:
        capture_module(model, (torch.randn(2, 4),), ExportOptions())
    message = str(info.value)
    assert "the model is in training mode; call model.eval() (aotc compiles inference graphs)" in (
        message
    )
    assert "'1'" in message


def test_dropout_in_train_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "drop.py",
        """\
        import torch
        import torch.nn.functional as F


        class M(torch.nn.Module):
            def forward(self, x):
                return F.dropout(x, 0.5, training=True)


        def get_model():
            return M().eval()


        def get_example_inputs():
            return (torch.randn(2, 4),)
        """,
    )
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert "random ops are not supported" in message
    assert f"drop.py:{_line_of(path, 'F.dropout')} (return F.dropout" in message
    assert "aten.dropout.default(x, 0.5, True)" in message
    assert "model.eval()" in message


def test_randn_in_forward_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "noise.py",
        """\
        import torch


        class M(torch.nn.Module):
            def forward(self, x):
                y = x * 2
                return y + torch.randn(y.shape)


        def get_model():
            return M().eval()


        def get_example_inputs():
            return (torch.randn(2, 4),)
        """,
    )
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert f"noise.py:{_line_of(path, 'torch.randn(y.shape)')} " in message
    assert "aten.randn" in message and "get_example_inputs()" in message


def test_eval_dropout_accepted() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).eval()
    exported = capture_module(model, (torch.randn(2, 4),), ExportOptions())
    ops = _ops(exported.program)
    assert aten.native_dropout.default not in ops and aten.addmm.default in ops


def test_attention_dropout_refused() -> None:
    class Attention(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.1)

    with pytest.raises(FrontendError, match="random ops"):
        capture_module(Attention().eval(), (torch.randn(1, 2, 4, 8),), ExportOptions())


class _Nonzero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(x)


class _Masked(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0].sum()


@pytest.mark.parametrize(
    "model, op, reaches_output",
    [(_Nonzero, "aten.nonzero", True), (_Masked, "aten.index.Tensor", False)],
)
def test_data_dependent_shapes_refused(
    model: Callable[[], nn.Module], op: str, reaches_output: bool
) -> None:
    with pytest.raises(FrontendError) as info:
        capture_module(model().eval(), (torch.randn(3, 3),), ExportOptions())
    message = str(info.value)
    assert "data-dependent shapes are not supported" in message and op in message
    assert ("reaches output 0" in message) == reaches_output
    assert "test_frontend.py:" in message  # the line of the in-memory module


def test_export_failure_names_the_model_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flow.py",
        """\
        import torch


        class M(torch.nn.Module):
            def forward(self, x):
                if x.sum() > 0:
                    return x
                return -x


        def get_model():
            return M().eval()


        def get_example_inputs():
            return (torch.randn(2, 4),)
        """,
    )
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert message.startswith("torch.export could not capture the model")
    assert f"\n  at flow.py:{_line_of(path, 'if x.sum()')} (if x.sum() > 0:)" in message


# --- loading ----------------------------------------------------------------------


def test_missing_get_model(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "empty.py", "import torch\n\n\ndef get_example_inputs():\n    return ()\n"
    )
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert "does not define get_model()" in message
    assert (
        "model.py must define get_model() returning an nn.Module and get_example_inputs() "
        "returning a tuple of inputs; optional get_dynamic_shapes()"
    ) in message


def test_custom_callable_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "custom.py",
        """\
        import torch


        def build():
            return torch.nn.Linear(4, 2).eval()


        def inputs():
            return (torch.randn(3, 4),)
        """,
    )
    with pytest.raises(FrontendError, match=r"does not define build2\(\)"):
        run_frontend(path, ExportOptions(model_fn="build2", inputs_fn="inputs"))
    exported = run_frontend(path, ExportOptions(model_fn="build", inputs_fn="inputs"))
    assert aten.addmm.default in _ops(exported.program)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FrontendError, match="does not exist"):
        run_frontend(tmp_path / "nope.py", ExportOptions())


def test_import_error_names_the_model_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.py", "import torch\n\nx = 1\ny = undefined_name + x\n")
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert "NameError" in message and "broken.py:4: y = undefined_name + x" in message


def test_syntax_error_names_the_model_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "syntax.py", "import torch\n\ndef get_model(:\n    pass\n")
    with pytest.raises(FrontendError, match=r"SyntaxError.*\n  at syntax.py:3: def get_model\(:"):
        run_frontend(path, ExportOptions())


def test_wrong_return_types(tmp_path: Path) -> None:
    source = """\
        import torch


        def get_model():
            return {model}


        def get_example_inputs():
            return {inputs}
        """
    path = _write(tmp_path, "a.py", source.format(model="42", inputs="(torch.ones(2),)"))
    with pytest.raises(FrontendError, match=r"get_model\(\) in .* returned int, not an nn.Module"):
        run_frontend(path, ExportOptions())
    path = _write(tmp_path, "b.py", source.format(model="torch.nn.ReLU()", inputs="torch.ones(2)"))
    with pytest.raises(FrontendError, match=r"returned Tensor, not a tuple.*\(x,\)"):
        run_frontend(path, ExportOptions())


def test_get_model_raising_names_the_model_line(tmp_path: Path) -> None:
    source = "def get_model():\n    raise ValueError('no weights')\n\n\ndef get_example_inputs():\n"
    path = _write(tmp_path, "raises.py", source + "    return ()\n")
    with pytest.raises(FrontendError) as info:
        run_frontend(path, ExportOptions())
    message = str(info.value)
    assert "ValueError: no weights" in message and "raises.py:2: raise ValueError" in message


def test_dynamic_shapes_and_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "my model+v2.py",
        """\
        import torch


        def get_model():
            return torch.nn.Linear(4, 2).eval()


        def get_example_inputs():
            return (torch.randn(3, 4),)


        def get_dynamic_shapes():
            return ({0: torch.export.Dim("batch", min=2, max=64)},)
        """,
    )
    exported = run_frontend(path, ExportOptions())
    assert exported.name == "my_model_v2"
    (user_input,) = exported.program.graph_signature.user_inputs
    (x,) = [n for n in exported.program.graph.nodes if n.name == user_input]
    assert not isinstance(x.meta["val"].shape[0], int)  # symbolic batch


def test_sanitize_name() -> None:
    assert sanitize_name("resnet-50.v1") == "resnet-50.v1"
    assert sanitize_name("../evil") == "_evil"
    assert sanitize_name("..") == "model"
    assert sanitize_name("ünï cödé") == "_n__c_d_"


# --- dtype ------------------------------------------------------------------------


def test_bfloat16_option_casts_a_copy() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4)).eval()
    inputs = (torch.tensor([[1, 2, 3]]),)
    exported = capture_module(model, inputs, ExportOptions(dtype="bfloat16"))
    assert model[1].weight.dtype == torch.float32  # the caller's module is untouched
    assert exported.module[1].weight.dtype == torch.bfloat16
    assert exported.example_inputs[0].dtype == torch.int64  # integer inputs keep theirs
    (out,) = exported.program.graph.output_node().args[0]
    assert out.meta["val"].dtype == torch.bfloat16


def test_bfloat16_option_casts_float_inputs(mlp: ExportedModel) -> None:
    exported = capture_module(mlp.module, mlp.example_inputs, ExportOptions(dtype="bfloat16"))
    assert exported.example_inputs[0].dtype == torch.bfloat16
    params = exported.program.graph_signature.inputs_to_parameters
    for node in exported.program.graph.nodes:
        if node.op == "placeholder" and (node.name in params or node.name == "x"):
            assert node.meta["val"].dtype == torch.bfloat16, node.name
