"""OpInfo samples as compile cases.

A case is one OpInfo entry applied to one of its sample inputs in one dtype.
Its tensors (the sample's input, and every tensor among its args and kwargs)
become module inputs; every other argument (dims, sizes, dtypes, flags) stays
a constant of the module, as a user's model would have it.

Samples are drawn with a fixed seed per (op, dtype), so every process that
asks for case N of an op sees the same tensors (the sweep's workers and the
parent agree on what N is). Tensors are made contiguous: the package ABI
takes dense row-major tensors.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True, order=True)
class CaseId:
    op: str  # OpInfo name, with ".variant" when the entry has a variant_test_name
    dtype: str  # a key of DTYPES
    index: int  # position among the op's sample inputs for this dtype

    def __str__(self) -> str:
        return f"{self.op}[{self.dtype}][{self.index}]"


@dataclass
class Case:
    id: CaseId
    fn: Callable[..., Any]
    spec: pytree.TreeSpec  # of (input, args, kwargs)
    leaves: list[Any]  # the flattened sample, tensor slots included
    tensor_slots: list[int]  # which leaves are module inputs
    description: str
    atol: float
    rtol: float
    expected: list[torch.Tensor] | None = field(default=None, repr=False)
    # bfloat16 cases: eager on float32 copies of the inputs, cast back
    # ([Note: reference in float] in check.py).
    expected_in_float: list[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [self.leaves[i] for i in self.tensor_slots]

    def call(self, tensors: Sequence[torch.Tensor]) -> Any:
        """Applies the op to this sample with |tensors| in its tensor slots."""
        leaves = list(self.leaves)
        for slot, t in zip(self.tensor_slots, tensors, strict=True):
            leaves[slot] = t
        inp, args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return self.fn(inp, *args, **kwargs)


class OneOpModule(torch.nn.Module):
    """forward(*tensors): each case's op on its own tensors, all outputs as
    one flat tuple (case after case)."""

    def __init__(self, cases: Sequence[Case]) -> None:
        super().__init__()
        self.cases = list(cases)

    def forward(self, *tensors: torch.Tensor) -> tuple[Any, ...]:
        outputs: list[Any] = []
        start = 0
        for case in self.cases:
            count = len(case.tensor_slots)
            result = case.call(tensors[start : start + count])
            start += count
            # Tensors only, as eager_outputs() counts them.
            outputs.extend(t for t in pytree.tree_leaves(result) if isinstance(t, torch.Tensor))
        return tuple(outputs)


def flat_inputs(cases: Sequence[Case]) -> tuple[torch.Tensor, ...]:
    """The module inputs of OneOpModule(cases), fresh copies."""
    return tuple(t.clone() for case in cases for t in case.tensors)


def load_op_db() -> dict[str, Any]:
    """OpInfo entries by op_name(); raises ImportError with the fix when
    torch's test extras are missing."""
    try:
        from torch.testing._internal.common_methods_invocations import op_db
    except ImportError as e:
        raise ImportError(
            f"torch.testing._internal needs torch's test extras ({e}); run: pip install expecttest"
        ) from e
    return {op_name(op): op for op in op_db}


def op_name(op: Any) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def eager_supports(op: Any, dtype: str) -> bool:
    return DTYPES[dtype] in op.supported_dtypes("cpu")


def make_cases(op: Any, dtype: str, indices: Sequence[int] | None = None) -> list[Case]:
    """The cases of |op| in |dtype| (all of them, or those at |indices|)."""
    name = op_name(op)
    torch_dtype = DTYPES[dtype]
    # The same seed in every process: case N is the same sample everywhere.
    torch.manual_seed(zlib.crc32(f"{name}/{dtype}".encode()))
    samples = list(op.sample_inputs("cpu", torch_dtype, requires_grad=False))
    atol, rtol = tolerances(op, torch_dtype)
    wanted = range(len(samples)) if indices is None else indices
    cases = []
    for index in wanted:
        sample = samples[index]
        leaves, spec = pytree.tree_flatten((sample.input, tuple(sample.args), dict(sample.kwargs)))
        slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        for i in slots:
            leaves[i] = leaves[i].detach().contiguous()
        cases.append(
            Case(
                id=CaseId(name, dtype, index),
                fn=op.op,
                spec=spec,
                leaves=leaves,
                tensor_slots=slots,
                description=describe_sample(sample),
                atol=atol,
                rtol=rtol,
            )
        )
    return cases


def sample_count(op: Any, dtype: str) -> int:
    torch.manual_seed(zlib.crc32(f"{op_name(op)}/{dtype}".encode()))
    return sum(1 for _ in op.sample_inputs("cpu", DTYPES[dtype], requires_grad=False))


def describe_sample(sample: Any) -> str:
    """A short text of a sample: tensors as dtype[shape], other values as they are."""

    def show(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            dtype = str(value.dtype).removeprefix("torch.")
            return f"{dtype}{list(value.shape)}"
        if isinstance(value, (list, tuple)):
            inner = ", ".join(show(v) for v in value)
            return f"[{inner}]" if isinstance(value, list) else f"({inner})"
        return repr(value)

    parts = [show(sample.input), *(show(a) for a in sample.args)]
    parts += [f"{k}={show(v)}" for k, v in sample.kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------- #
# Tolerances                                                                   #
# --------------------------------------------------------------------------- #

# The OpInfo tests whose tolerance overrides apply to a compiled-vs-eager
# comparison: Inductor's OpInfo sweep, and TestCommon's (any test, CPU or all
# devices). The loosest override wins.
_TOLERANCE_TESTS = ("TestInductorOpInfo", "TestCommon")


def tolerances(op: Any, dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for |op|'s outputs in |dtype|: torch.testing.assert_close's
    defaults, loosened by the op's own toleranceOverride decorators."""
    from torch.testing._comparison import default_tolerances

    rtol, atol = default_tolerances(dtype)
    from torch.testing._internal.common_device_type import toleranceOverride
    from torch.testing._internal.opinfo.core import DecorateInfo

    for info in op.decorators:
        if not isinstance(info, DecorateInfo) or info.cls_name not in _TOLERANCE_TESTS:
            continue
        if info.device_type not in (None, "cpu"):
            continue
        if info.dtypes is not None and dtype not in info.dtypes:
            continue
        for decorator in info.decorators:
            if isinstance(decorator, toleranceOverride) and dtype in decorator.d:
                override = decorator.d[dtype]
                atol, rtol = max(atol, override.atol), max(rtol, override.rtol)
    return atol, rtol
