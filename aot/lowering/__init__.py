"""Lowering: aten ops to aotc IR, one module per op family.

The registry is built explicitly by build_registry() (no registration as an
import side effect), so tests can make fresh ones.
"""

from __future__ import annotations

from .registry import LoweringRegistry, UnsupportedOpError


def build_registry() -> LoweringRegistry:
    """A registry holding every op family aotc lowers."""
    from . import (
        composite,
        creation,
        cross_entropy,
        extern,
        indexing,
        norms,
        pointwise,
        reductions,
        resample,
        scan,
        scatter,
        search,
        sort,
        views,
    )

    registry = LoweringRegistry()
    for family in (
        views,
        indexing,
        creation,
        pointwise,
        reductions,
        norms,
        extern,
        scan,
        sort,
        scatter,
        resample,
        search,
        composite,
        cross_entropy,
    ):
        family.register(registry)
    return registry


__all__ = ["LoweringRegistry", "UnsupportedOpError", "build_registry"]
