"""Ops lowered by composing other lowerings (distances, histograms, segment
reductions, the *_copy variants of views). Filled in by the op-coverage work
(issue 7)."""

from __future__ import annotations

from .registry import LoweringRegistry


def register(registry: LoweringRegistry) -> None:
    pass
