"""The device the conformance suites run on: cpu, or the GPU when
AOTC_TEST_DEVICE=cuda (scripts/gpu_check.sh sets it on a GPU machine). The
same tests then export cuda packages (Triton cubins for the local GPU's arch)
and compare them, through the C++ runtime, with eager on that GPU."""

from __future__ import annotations

import os
from typing import Any

import pytest

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


def on_test_device(value: Any) -> Any:
    """|value| (a module, or a pytree of tensors) moved to TEST_DEVICE."""
    if TEST_DEVICE == "cpu":
        return value
    import torch
    import torch.utils._pytree as pytree

    if isinstance(value, torch.nn.Module):
        return value.to(TEST_DEVICE)
    return pytree.tree_map_only(torch.Tensor, lambda t: t.to(TEST_DEVICE), value)
