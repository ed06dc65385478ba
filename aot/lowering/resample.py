"""Lowerings of upsampling and interpolation (nearest, linear family) as
loop kernels: each output element reads its source elements through
computed indices. Filled in by the op-coverage work (issue 7)."""

from __future__ import annotations

from .registry import LoweringRegistry


def register(registry: LoweringRegistry) -> None:
    pass
