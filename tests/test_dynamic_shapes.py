"""Dynamic shapes (issue 12): one package, many sizes. The examples exported
with `--dynamic` specs run through the C++ runtime at the minimum, the
maximum and odd sizes between, against eager; sizes outside the declared
ranges and inputs that break a relation are refused with the dim named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aot import runtime
from aot.cli import main
from aot.export import export_model
from aot.frontend import FrontendError
from aot.frontend.dynamic_spec import parse_dynamic_spec
from aot.frontend.loader import load_model_file
from aot.options import ExportOptions
from aot.testing import assert_close_to_eager
from tests.devices import TEST_DEVICE, export_options

REPO = Path(__file__).resolve().parent.parent


def test_spec_grammar():
    s = parse_dynamic_spec("x:0=batch[1,512]")
    assert (s.input, s.dim, s.name, s.low, s.high, s.declares) == ("x", 0, "batch", 1, 512, True)
    s = parse_dynamic_spec("1:2=2*seq")
    assert (s.input, s.dim, s.scale, s.declares) == ("1", 2, 2, False)
    s = parse_dynamic_spec("x:1=seq[2,]")
    assert (s.low, s.high) == (2, None)
    for bad, why in [
        ("x=batch", "expected INPUT:DIM=NAME"),
        ("x:0=batch[9,3]", "is empty"),
        ("x:0=2*batch[1,4]", "takes no range"),
        ("x:0=batch[1;4]", "expected INPUT:DIM=NAME"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_dynamic_spec(bad)


@pytest.mark.parametrize(
    "specs, why",
    [
        (["y:0=b[1,4]"], "no input 'y' \\(its inputs: x\\)"),
        (["x:5=b[1,4]"], "has 2 dims"),
        (["x:0=b[1,4]", "x:0=b[1,4]"], "declared twice"),
        (["x:0=2*b"], "never declared"),
        (["3:0=b[1,4]"], "takes 1 inputs"),
    ],
)
def test_bad_specs_are_refused_with_the_spec_named(specs, why):
    options = ExportOptions(dynamic=tuple(specs))
    with pytest.raises(FrontendError, match=why):
        load_model_file(REPO / "examples" / "mlp.py", options)


def test_example_size_under_two_is_refused(tmp_path):
    model = tmp_path / "one.py"
    model.write_text(
        "import torch\n"
        "def get_model():\n    return torch.nn.ReLU()\n"
        "def get_example_inputs():\n    return (torch.randn(1, 4),)\n"
    )
    with pytest.raises(FrontendError, match="example size of 'input' dim 0 is 1"):
        load_model_file(model, ExportOptions(dynamic=("input:0=b[1,8]",)))


def _export(tmp_path: Path, example: str, specs: list[str], device: bool = False) -> Path:
    """|example| exported with |specs|; with |device|, for AOTC_TEST_DEVICE
    (tests/devices.py: the GPU in scripts/gpu_check.sh)."""
    target = export_options() if device else None
    options = ExportOptions(
        dynamic=tuple(specs),
        device=target.device if target else "cpu",
        arch=target.arch if target else None,
    )
    return export_model(REPO / "examples" / f"{example}.py", tmp_path / "m.pt2", options, True)


def _eager(example: str) -> torch.nn.Module:
    return load_model_file(REPO / "examples" / f"{example}.py", ExportOptions()).module


CASES = {
    # example: (specs, sizes to run, input maker)
    "mlp": (["x:0=batch[1,64]"], [(1,), (64,), (13,)], lambda b: torch.randn(b, 64)),
    "cnn": (["x:0=batch[1,16]"], [(1,), (16,), (5,)], lambda b: torch.randn(b, 3, 32, 32)),
    "transformer": (
        ["src:0=batch[1,8]", "src:1=seq[2,32]"],
        [(1, 2), (8, 32), (3, 17)],
        lambda b, t: torch.randn(b, t, 64),
    ),
    "gpt": (
        ["idx:0=batch[1,8]", "idx:1=seq[2,32]"],
        [(1, 2), (8, 32), (3, 7)],
        lambda b, t: torch.randint(0, 128, (b, t)),
    ),
}


@pytest.mark.parametrize("example", list(CASES))
def test_example_runs_at_min_max_and_odd_sizes(example, tmp_path):
    specs, sizes, make = CASES[example]
    package = _export(tmp_path, example, specs, device=True)
    model = runtime.load(package, device=TEST_DEVICE)
    eager = _eager(example)
    for size in sizes:
        x = make(*size)
        with torch.no_grad():
            expected = eager(x)
        (got,) = model(x.to(TEST_DEVICE))
        got = got.cpu()
        assert got.shape == expected.shape, size
        assert_close_to_eager(got, expected, None, None)


def test_out_of_range_sizes_are_refused_naming_the_dim(tmp_path):
    model = runtime.load(_export(tmp_path, "gpt", CASES["gpt"][0]))
    with pytest.raises(runtime.AotcError, match=r'"idx" dim 1 \(s\d\): 33 is outside \[2, 32\]'):
        model(torch.randint(0, 128, (2, 33)))
    with pytest.raises(runtime.AotcError, match=r'"idx" dim 0 \(s\d\): 9 is outside \[1, 8\]'):
        model(torch.randint(0, 128, (9, 4)))
    (ok,) = model(torch.randint(0, 128, (2, 4)))  # the model is still usable
    assert ok.shape == (2, 4, 128)


def test_shared_and_derived_dims_are_checked(tmp_path):
    source = tmp_path / "pair.py"
    source.write_text(
        "import torch\n"
        "class Pair(torch.nn.Module):\n"
        "    def forward(self, x, y, z):\n"
        "        return torch.cat([x, x]) * z[:, :1] + y.sum()\n"
        "def get_model():\n    return Pair().eval()\n"
        "def get_example_inputs():\n"
        "    return (torch.randn(3, 4), torch.randn(3, 2), torch.randn(6, 4))\n"
    )
    specs = ("x:0=n[2,16]", "y:0=n", "z:0=2*n")
    package = export_model(source, tmp_path / "pair.pt2", ExportOptions(dynamic=specs), True)
    model = runtime.load(package)
    x, y, z = torch.randn(5, 4), torch.randn(5, 2), torch.randn(10, 4)
    (got,) = model(x, y, z)
    assert_close_to_eager(got, torch.cat([x, x]) * z[:, :1] + y.sum(), None, None)
    with pytest.raises(runtime.AotcError, match=r'"y" dim 0: expected s\d+ = 5, got 4'):
        model(x, torch.randn(4, 2), z)
    with pytest.raises(runtime.AotcError, match=r'"z" dim 0: expected 2\*s\d+ = 10, got 9'):
        model(x, y, torch.randn(9, 4))


def test_cli_export_with_dynamic(tmp_path, capsys):
    out = tmp_path / "mlp.pt2"
    argv = ["export", str(REPO / "examples" / "mlp.py"), "-o", str(out), "--quiet"]
    assert main([*argv, "--dynamic", "x:0=batch[2,32]"]) == 0
    model = runtime.load(out)
    (y,) = model(torch.randn(31, 64))
    assert y.shape[0] == 31
    assert main([*argv, "--dynamic", "x:0=batch"]) == 0  # unbounded
    assert main([*argv, "--dynamic", "x=batch"]) == 2
    assert "expected INPUT:DIM=NAME[MIN,MAX]" in capsys.readouterr().err
