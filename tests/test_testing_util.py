"""aot.testing: AOTCRunnerUtil and check_model, through every compiler stage and
the C++ runtime."""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
import torch

from aot.testing import AOTCRunnerUtil, assert_close_to_eager, check_model


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
    with pytest.raises(AssertionError, match="output 0"):
        assert_close_to_eager(torch.ones(4) * 1.01, torch.ones(4), None, None)
