"""Output structure records that survive a package round trip.

torch's treespec_dumps cannot serialise every container torch.export allows:
torch.return_types (x.max(dim=...), sort, topk) have no serialisation name.
For those, export writes this module's JSON description instead and the
harness rebuilds the structure from it. Tensors are leaves, in the order
torch.utils._pytree flattens them.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.utils._pytree as pytree


def describe(value: Any) -> dict[str, Any] | None:
    """A JSON-able description of |value|'s structure, or None when it holds a
    container this format does not know."""
    if isinstance(value, torch.Tensor):
        return {"type": "leaf"}
    if value is None:  # a forward that only mutates returns None: no output
        return {"type": "none"}
    if type(value).__module__ == "torch.return_types":
        items = [describe(v) for v in value]
        return (
            None
            if None in items
            else {"type": "return_types", "name": type(value).__name__, "items": items}
        )
    if type(value) in (tuple, list):
        items = [describe(v) for v in value]
        return None if None in items else {"type": type(value).__name__, "items": items}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        items = [describe(v) for v in value.values()]
        return None if None in items else {"type": "dict", "keys": list(value), "items": items}
    return None


def rebuild(description: dict[str, Any], leaves: list[Any]) -> Any:
    """The structure |description| with |leaves| in place (consumed in order)."""
    it = iter(leaves)
    result = _build(description, it)
    if next(it, None) is not None:
        raise ValueError("more outputs than the recorded structure holds")
    return result


def _build(description: dict[str, Any], it: Any) -> Any:
    kind = description["type"]
    if kind == "none":
        return None
    if kind == "leaf":
        try:
            return next(it)
        except StopIteration:
            raise ValueError("fewer outputs than the recorded structure holds") from None
    items = [_build(d, it) for d in description["items"]]
    if kind == "tuple":
        return tuple(items)
    if kind == "list":
        return items
    if kind == "dict":
        return dict(zip(description["keys"], items, strict=True))
    if kind == "return_types":
        return getattr(torch.return_types, description["name"])(items)
    raise ValueError(f"unknown structure type {kind!r}")


# -- inputs ------------------------------------------------------------------
# What a loaded package needs beyond in_spec to accept the model's own call:
# the forward's parameter names, and the values of the non-tensor leaves that
# torch.export specialised (a different value at call time is an error).


def json_leaf(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def from_json_leaf(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


def input_record(inputs: tuple[Any, ...], names: list[str]) -> dict[str, Any]:
    """{"parameters": names, "constants": {leaf index: value}} for |inputs|."""
    constants = {}
    for i, leaf in enumerate(pytree.tree_leaves(inputs)):
        if isinstance(leaf, torch.Tensor):
            continue
        if leaf is not None and not isinstance(leaf, bool | int | float | str):
            raise TypeError(f"input leaf {i} of type {type(leaf).__name__} cannot be compiled")
        constants[str(i)] = json_leaf(leaf)
    return {"parameters": names, "constants": constants}


def positional_names(module: torch.nn.Module, count: int) -> list[str]:
    """The names of forward's first |count| positional parameters."""
    params = [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return params[:count] if len(params) >= count else [f"arg{i}" for i in range(count)]
