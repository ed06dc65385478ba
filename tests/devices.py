"""The device the conformance suites run on: cpu, or the GPU when
AOTC_TEST_DEVICE=cuda (scripts/gpu_check.sh sets it on a GPU machine). The
same tests then export cuda packages (Triton cubins for the local GPU's arch)
and run them through the C++ runtime on the GPU, with the inputs moved there;
the eager reference stays on CPU (models that make CPU tensors in forward
run unchanged), and the outputs come back to CPU for the comparison."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest

from aot.testing import AOTCRunnerUtil

TEST_DEVICE = os.environ.get("AOTC_TEST_DEVICE", "cpu")


def export_options() -> Any:
    """ExportOptions for TEST_DEVICE (None on cpu: the harness's defaults)."""
    if TEST_DEVICE == "cpu":
        return None
    import torch

    from aot.options import ExportOptions

    if not torch.cuda.is_available():
        pytest.fail(f"AOTC_TEST_DEVICE={TEST_DEVICE} but torch sees no GPU")
    major, minor = torch.cuda.get_device_capability()
    return ExportOptions(device="cuda", arch=f"sm_{major}{minor}")


def _moved(value: Any, device: str) -> Any:
    import torch
    import torch.utils._pytree as pytree

    return pytree.tree_map_only(torch.Tensor, lambda t: t.to(device), value)


def run_compiled(model: Any, trials: Sequence[Any], **kwargs: Any) -> list[Any]:
    """AOTCRunnerUtil.run_multiple(model, trials, **kwargs) on TEST_DEVICE:
    |model| and |trials| stay as they are (CPU) for eager; on cuda the
    package runs on the trials moved to the GPU and returns CPU outputs."""
    if TEST_DEVICE == "cpu":
        return AOTCRunnerUtil.run_multiple(model, trials, **kwargs)
    for key in ("example_inputs", "example_kwargs", "list_example_kwargs"):
        if kwargs.get(key) is not None:
            kwargs[key] = _moved(kwargs[key], TEST_DEVICE)
    outputs = AOTCRunnerUtil.run_multiple(
        model, _moved(list(trials), TEST_DEVICE), export_options(), **kwargs
    )
    return _moved(outputs, "cpu")
