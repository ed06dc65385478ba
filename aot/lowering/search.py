"""Lowerings of binary-search ops (searchsorted, bucketize). Filled in by the
op-coverage work (issue 7)."""

from __future__ import annotations

from .registry import LoweringRegistry


def register(registry: LoweringRegistry) -> None:
    pass
