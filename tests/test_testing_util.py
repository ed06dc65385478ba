"""aot.testing: AOTCRunnerUtil and check_model, through every compiler stage and
the C++ runtime."""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
import torch

from aot.testing import (
    AOTCRunnerUtil,
    InputMismatchError,
    assert_close_to_eager,
    check_model,
    check_model_with_multiple_inputs,
)


class DictOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        h = self.fc(x)
        return {"a": h.relu(), "b": (h * y.sum(), y + 1)}


class Sine(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x) * 2


def test_outputs_keep_the_models_structure(native_build):
    model = DictOut().eval()
    x, y = torch.randn(3, 8), torch.randn(5)
    out = AOTCRunnerUtil.run(model, (x, y))
    assert set(out) == {"a", "b"} and isinstance(out["b"], tuple)
    check_model(None, model, (x, y))


def test_single_tensor_output_and_dynamic_batch(native_build):
    batch = torch.export.Dim("batch", min=2, max=64)
    inputs = [(torch.randn(4, 3),), (torch.randn(9, 3),)]
    outs = AOTCRunnerUtil.run_multiple(Sine().eval(), inputs, dynamic_shapes=({0: batch},))
    for (x,), out in zip(inputs, outs, strict=True):
        assert isinstance(out, torch.Tensor)
        torch.testing.assert_close(out, torch.sin(x) * 2)


def test_compile_and_load(native_build):
    path = AOTCRunnerUtil.compile(Sine().eval(), (torch.randn(2, 5),))
    try:
        fn = AOTCRunnerUtil.load(path)
        x = torch.randn(2, 5)
        torch.testing.assert_close(fn(x), torch.sin(x) * 2)
    finally:
        import shutil

        shutil.rmtree(Path(path).parent)


def test_check_model_in_a_testcase_and_its_tolerances(native_build):
    class Case(unittest.TestCase):
        def runTest(self) -> None:
            check_model(self, Sine().eval(), (torch.randn(4, 4),))

    result = unittest.TestResult()
    Case().run(result)
    assert result.wasSuccessful(), result.failures
    expected = torch.ones(4, dtype=torch.bfloat16)
    assert_close_to_eager(expected * 1.01, expected, None, None)  # bf16: 2e-2
    with pytest.raises(AssertionError, match=r"^output \(atol 1e-05, rtol 1.3e-06\)"):
        assert_close_to_eager(torch.ones(4) * 1.01, torch.ones(4), None, None)
    # Integers compare exactly whatever the tolerance.
    with pytest.raises(AssertionError, match=r"output\['n'\]"):
        assert_close_to_eager({"n": torch.tensor([3])}, {"n": torch.tensor([2])}, 5.0, 5.0)
    assert_close_to_eager([torch.ones(2), 3], [torch.ones(2), 3], None, None)
    with pytest.raises(AssertionError, match=r"output\[1\]: compiled 4, eager 3"):
        assert_close_to_eager([torch.ones(2), 4], [torch.ones(2), 3], None, None)


class PytreeModel(torch.nn.Module):
    """A dict input, an int torch.export specialises, None and float defaults
    (keyword inputs), nested list/tuple/dict outputs."""

    def forward(self, d: dict, n: int, mask=None, scale: float = 1.0, bias=None):
        h = d["a"] * n + d["b"][0] * scale
        if mask is not None:
            h = h * mask
        if bias is not None:
            h = h + bias
        return [h, (h.sum(), {"k": d["b"][1] + 1, "i": (d["a"] > 0).to(torch.int64)})]


def _pytree_inputs() -> dict:
    return {"a": torch.randn(3), "b": (torch.randn(3), torch.randn(2))}


def test_pytree_inputs_kwargs_and_specialised_leaves(native_build):
    model = PytreeModel().eval()
    d, bias = _pytree_inputs(), torch.randn(3)
    # Keyword inputs skip a default (mask=None) that becomes a None leaf.
    path = AOTCRunnerUtil.compile(model, (d, 3), example_kwargs={"scale": 2.0, "bias": bias})
    try:
        fn = AOTCRunnerUtil.load(path)
        d2, bias2 = _pytree_inputs(), torch.randn(3)
        out = fn(d2, 3, scale=2.0, bias=bias2)
        assert isinstance(out, list) and isinstance(out[1], tuple) and set(out[1][1]) == {"k", "i"}
        assert_close_to_eager(out, model(d2, 3, scale=2.0, bias=bias2), None, None)
        assert_close_to_eager(fn(d2, 3, None, 2.0, bias2), out, 0.0, 0.0)  # all positional
        with pytest.raises(InputMismatchError, match=r"input n is 4, but .* compiled with 3"):
            fn(d2, 4, scale=2.0, bias=bias2)
        with pytest.raises(InputMismatchError, match=r"input scale is 1.0, .* with 2.0"):
            fn(d2, 3, scale=1.0, bias=bias2)
        with pytest.raises(InputMismatchError, match=r"input mask is a tensor"):
            fn(d2, 3, mask=torch.ones(3), scale=2.0, bias=bias2)
        with pytest.raises(InputMismatchError, match=r"input bias is None, but the package takes"):
            fn(d2, 3, scale=2.0, bias=None)
        with pytest.raises(InputMismatchError, match=r"input d has the structure"):
            fn({"a": d2["a"], "b": d2["b"][0]}, 3, scale=2.0, bias=bias2)
        with pytest.raises(InputMismatchError, match=r"input 'bias' is missing"):
            fn(d2, 3, scale=2.0)
        with pytest.raises(InputMismatchError, match=r"unexpected keyword input\(s\) 'bogus'"):
            fn(d2, 3, scale=2.0, bias=bias2, bogus=1)
        # Without the side file compile() writes, the package's own record
        # (written by the export driver) still gives names and specialised values.
        Path(path + ".inputs.json").unlink()
        fn = AOTCRunnerUtil.load(path)
        assert_close_to_eager(fn(d2, 3, None, 2.0, bias2), out, 0.0, 0.0)
        assert_close_to_eager(fn(d2, 3, scale=2.0, bias=bias2), out, 0.0, 0.0)
        with pytest.raises(InputMismatchError, match=r"input n is 4, but .* compiled with 3"):
            fn(d2, 4, None, 2.0, bias2)
        with pytest.raises(InputMismatchError, match=r"input d has the structure"):
            fn({"a": d2["a"]}, 3, None, 2.0, bias2)
    finally:
        import shutil

        shutil.rmtree(Path(path).parent)


def test_check_model_with_kwargs_and_inplace_input(native_build):
    class InPlace(torch.nn.Module):
        def forward(self, x: torch.Tensor, *, ignored=None) -> tuple:
            return (x.add_(1), x * 2)

    class Keyed(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> dict:
            return {"out": x + alpha * y}

    # Eager runs on deep copies: the in-place add cannot shift the comparison.
    x = torch.randn(4)
    check_model(None, InPlace().eval(), (x,))
    check_model(None, Keyed().eval(), (torch.randn(2),), example_kwargs={"y": torch.randn(2)})


def test_check_model_reports_a_real_mismatch_with_its_path(native_build, monkeypatch):
    real_load = AOTCRunnerUtil.load

    def perturbed_load(path: str, device: str | None = None):
        fn = real_load(path, device)

        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            out["b"][0].add_(1e-3)  # the compiled output, slightly wrong
            return out

        return call

    monkeypatch.setattr(AOTCRunnerUtil, "load", staticmethod(perturbed_load))

    class Case(unittest.TestCase):
        def runTest(self) -> None:
            check_model(self, DictOut().eval(), (torch.randn(3, 8), torch.randn(5)))

    result = unittest.TestResult()
    Case().run(result)
    assert len(result.failures) == 1, result.errors
    message = result.failures[0][1]
    assert "output['b'][0]" in message and "Mismatched elements" in message
    # A looser tolerance lets the same perturbation pass.
    check_model(None, DictOut().eval(), (torch.randn(3, 8), torch.randn(5)), atol=1e-2, rtol=0)


def test_run_multiple_and_check_model_with_multiple_inputs(native_build):
    batch = torch.export.Dim("batch", min=2, max=64)
    model = DictOut().eval()
    inputs = [(torch.randn(b, 8), torch.randn(5)) for b in (3, 7, 2)]
    outs = AOTCRunnerUtil.run_multiple(model, inputs, dynamic_shapes=({0: batch}, None))
    assert [o["a"].shape[0] for o in outs] == [3, 7, 2]
    with torch.no_grad():
        for args, out in zip(inputs, outs, strict=True):
            assert_close_to_eager(out, model(*args), None, None)
    check_model_with_multiple_inputs(None, model, inputs, dynamic_shapes=({0: batch}, None))


class _ReturnTypes(torch.nn.Module):
    def forward(self, x: torch.Tensor):
        return x.max(dim=1), {"sorted": torch.sort(x, dim=0), "top": [torch.topk(x, 2)]}


def test_return_types_outputs_keep_their_structure(native_build):
    """torch.return_types cannot be serialised by treespec_dumps; the package's
    own structure record rebuilds them (aot/structure.py)."""
    model = _ReturnTypes().eval()
    x = torch.randn(4, 6)
    actual = AOTCRunnerUtil.run(model, (x,))
    expected = model(x)
    assert type(actual[0]) is torch.return_types.max
    assert type(actual[1]["sorted"]) is torch.return_types.sort
    assert type(actual[1]["top"][0]) is torch.return_types.topk
    torch.testing.assert_close(actual[0].values, expected[0].values)
    torch.testing.assert_close(actual[0].indices, expected[0].indices)
    torch.testing.assert_close(actual[1]["sorted"].indices, expected[1]["sorted"].indices)
    torch.testing.assert_close(actual[1]["top"][0].values, expected[1]["top"][0].values)
