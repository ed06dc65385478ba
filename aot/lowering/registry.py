"""LoweringRegistry: one function per aten overload, turning FX arguments
into IR. Built explicitly (tests can make fresh ones); registering an op twice
raises; a missing op raises UnsupportedOpError naming it. No fallback to eager.

A lowering is ``fn(ctx, *args, **kwargs) -> TensorValue | tuple | list``
where tensor arguments arrive as TensorValues, scalars and lists as in the FX
node, and |ctx| is the LoweringContext of the graph being lowered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

Lowering = Callable[..., Any]


class UnsupportedOpError(Exception):
    """An aten op aotc cannot lower. The frontend adds the node and its
    model.py line."""

    def __init__(self, target: Any, supported_nearby: list[str]) -> None:
        self.target = target
        self.supported_nearby = supported_nearby
        hint = f" (supported ops nearby: {', '.join(supported_nearby)})" if supported_nearby else ""
        super().__init__(f"unsupported operator {target}{hint}")


class LoweringRegistry:
    def __init__(self) -> None:
        self._lowerings: dict[Any, Lowering] = {}

    def register(self, *targets: Any) -> Callable[[Lowering], Lowering]:
        """Decorator: registers |fn| for each aten overload (or OpOverloadPacket:
        all its overloads) in |targets|."""

        def decorate(fn: Lowering) -> Lowering:
            for target in _overloads(targets):
                if target in self._lowerings:
                    raise ValueError(f"{target} is registered twice")
                self._lowerings[target] = fn
            return fn

        return decorate

    def __contains__(self, target: Any) -> bool:
        return target in self._lowerings

    def get(self, target: Any) -> Lowering:
        fn = self._lowerings.get(target)
        if fn is None:
            raise UnsupportedOpError(target, self.nearby(target))
        return fn

    def supported(self) -> list[str]:
        return sorted(str(t) for t in self._lowerings)

    def nearby(self, target: Any) -> list[str]:
        """Supported overloads of the same op, or ops sharing its name's first word."""
        name = str(target).split(".")[1] if str(target).startswith("aten.") else str(target)
        stem = name.split("_")[0]
        found = [s for s in self.supported() if s.split(".")[1:2] == [name]]
        if not found:
            found = [s for s in self.supported() if stem and stem in s][:8]
        return found


def _overloads(targets: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for target in targets:
        if isinstance(target, torch._ops.OpOverloadPacket):
            out.extend(getattr(target, name) for name in target.overloads())
        else:
            out.append(target)
    return out
