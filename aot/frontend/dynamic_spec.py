"""`--dynamic` specs: torch.export dynamic_shapes from the command line.

[Note: dynamic specs] Each spec names one dim of one input and what it is:

    x:0=batch[1,512]    input x, dim 0: a new Dim "batch" in [1, 512]
    mask:0=batch        the same Dim as another spec declares (they must match)
    y:1=2*seq           a derived dim: twice Dim "seq" (declared elsewhere)
    x:1=seq[2,]         no upper bound

The input is named by forward's parameter name or its position ("0"). The
specs become the dict torch.export takes, {param: {dim: Dim}}, and replace
the model file's get_dynamic_shapes() when given. torch.export specialises a
dim whose example size is 0 or 1, so an example must be at least 2 there:
refused here with that hint rather than as export's own error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import FrontendError

_SPEC = re.compile(
    r"^(?P<input>[A-Za-z_][A-Za-z0-9_]*|\d+):(?P<dim>\d+)="
    r"(?:(?P<scale>\d+)\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\[(?P<low>\d+)?,(?P<high>\d+)?\])?$"
)


@dataclass(frozen=True)
class DynamicSpec:
    text: str
    input: str  # a parameter name, or its position as digits
    dim: int
    name: str  # the Dim's name
    scale: int = 1  # a derived dim: scale * Dim
    low: int | None = None  # the range, where this spec declares the Dim
    high: int | None = None
    declares: bool = False


def parse_dynamic_spec(text: str) -> DynamicSpec:
    """One spec (see [Note: dynamic specs]); ValueError naming what is wrong."""
    m = _SPEC.match(text.replace(" ", ""))
    if m is None:
        raise ValueError(
            f"--dynamic {text!r}: expected INPUT:DIM=NAME[MIN,MAX] (e.g. x:0=batch[1,512]), "
            "INPUT:DIM=NAME or INPUT:DIM=K*NAME"
        )
    declares = "[" in text
    low = int(m["low"]) if m["low"] else None
    high = int(m["high"]) if m["high"] else None
    scale = int(m["scale"]) if m["scale"] else 1
    if declares and scale != 1:
        raise ValueError(f"--dynamic {text!r}: a derived dim ({scale}*{m['name']}) takes no range")
    if low is not None and high is not None and low > high:
        raise ValueError(f"--dynamic {text!r}: the range [{low}, {high}] is empty")
    if scale == 0:
        raise ValueError(f"--dynamic {text!r}: the scale must be positive")
    return DynamicSpec(text, m["input"], int(m["dim"]), m["name"], scale, low, high, declares)


def dynamic_shapes_from_specs(
    specs: Sequence[str], module: torch.nn.Module, example_inputs: tuple[Any, ...]
) -> dict[str, dict[int, Any]]:
    """torch.export's dynamic_shapes for |module| from the --dynamic |specs|;
    FrontendError naming the spec for an unknown input, a dim out of range, a
    Dim declared twice differently or never, or an example size under 2."""
    from ..structure import positional_names

    try:
        parsed = [parse_dynamic_spec(s) for s in specs]
    except ValueError as e:
        raise FrontendError(str(e)) from e
    names = positional_names(module, len(example_inputs))
    dims: dict[str, Any] = {}
    for spec in parsed:
        if not spec.declares:
            continue
        if spec.name in dims:
            raise FrontendError(f"--dynamic {spec.text!r}: Dim {spec.name!r} is declared twice")
        kwargs = {k: v for k, v in (("min", spec.low), ("max", spec.high)) if v is not None}
        dims[spec.name] = torch.export.Dim(spec.name, **kwargs)
    out: dict[str, dict[int, Any]] = {}
    for spec in parsed:
        index = int(spec.input) if spec.input.isdigit() else _position(spec, names)
        if index >= len(example_inputs):
            raise FrontendError(
                f"--dynamic {spec.text!r}: the model takes {len(example_inputs)} inputs"
            )
        value = example_inputs[index]
        if not isinstance(value, torch.Tensor):
            raise FrontendError(f"--dynamic {spec.text!r}: input {names[index]!r} is no tensor")
        if spec.dim >= value.dim():
            raise FrontendError(
                f"--dynamic {spec.text!r}: input {names[index]!r} has {value.dim()} dims"
            )
        size = int(value.shape[spec.dim])
        if size < 2:
            raise FrontendError(
                f"--dynamic {spec.text!r}: the example size of {names[index]!r} dim {spec.dim} "
                f"is {size}; torch.export specialises sizes 0 and 1, so give an example of at "
                "least 2 there"
            )
        if spec.name not in dims:
            if spec.scale != 1:
                raise FrontendError(
                    f"--dynamic {spec.text!r}: Dim {spec.name!r} is used but never declared "
                    f"(add e.g. INPUT:DIM={spec.name}[MIN,MAX])"
                )
            dims[spec.name] = torch.export.Dim(spec.name)
        dim = dims[spec.name] if spec.scale == 1 else spec.scale * dims[spec.name]
        entry = out.setdefault(names[index], {})
        if spec.dim in entry:
            raise FrontendError(f"--dynamic {spec.text!r}: that dim is given twice")
        entry[spec.dim] = dim
    return out


def _position(spec: DynamicSpec, names: list[str]) -> int:
    if spec.input not in names:
        raise FrontendError(
            f"--dynamic {spec.text!r}: the model has no input {spec.input!r} "
            f"(its inputs: {', '.join(names)})"
        )
    return names.index(spec.input)
