"""check(fn, make_inputs): a function compiled once as a module, run through
the real runtime on two random input sets (seeds 0 and 1), each compared with
eager. Shared by the op-coverage lowering tests (test_coverage_*.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from aot.testing import AOTCRunnerUtil, assert_close_to_eager

Inputs = tuple[Any, ...]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Lambda(nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def check(fn: Callable[..., Any], make_inputs: Callable[[torch.Generator], Inputs]) -> None:
    """Compiles Lambda(|fn|) on make_inputs(seed 0) and checks it against
    eager on those inputs and on make_inputs(seed 1)."""
    model = Lambda(fn).eval()
    trials = [make_inputs(gen(0)), make_inputs(gen(1))]
    actual = AOTCRunnerUtil.run_multiple(model, copy.deepcopy(trials))
    for inputs, got in zip(trials, actual, strict=True):
        with torch.no_grad():
            expected = model(*copy.deepcopy(inputs))
        assert_close_to_eager(got, expected, None, None)
