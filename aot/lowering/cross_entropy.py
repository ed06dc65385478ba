"""Lowerings of torch's fused linear + cross-entropy ops
(torch.ops.torch_nn._linear_cross_entropy_*). Filled in by the op-coverage
work (issue 7)."""

from __future__ import annotations

from .registry import LoweringRegistry


def register(registry: LoweringRegistry) -> None:
    pass
