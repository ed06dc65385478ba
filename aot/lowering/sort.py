"""Lowerings of the sort family to ExternKernel nodes."""

from __future__ import annotations

from .registry import LoweringRegistry


def register(registry: LoweringRegistry) -> None:
    pass
