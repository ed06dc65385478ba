"""LoweringContext: the state of lowering one graph, passed to every lowering
function (no globals). It names buffers, realizes values into buffers and
records nodes in execution order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import (
    Buffer,
    BufferKind,
    ComputedBuffer,
    ExternKernel,
    Layout,
    Pointwise,
    Reduction,
    ReinterpretView,
    TensorValue,
)


class LoweringContext:
    def __init__(self) -> None:
        self.nodes: list[ComputedBuffer | ExternKernel] = []
        self._counts: dict[str, int] = {}
        # FX node names of the op being lowered (provenance rides on nodes).
        self.origins: tuple[str, ...] = ()

    def new_name(self, prefix: str = "buf") -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}{n}"

    def realize(self, value: TensorValue) -> Buffer | ReinterpretView:
        """|value| in memory: Buffers and strided views stay as they are;
        anything else is computed into a new contiguous buffer."""
        if isinstance(value, Buffer | ReinterpretView):
            return value
        return self.compute(value.get_size(), value.dtype, value.make_loader())

    def realize_contiguous(self, value: TensorValue) -> Buffer:
        """|value| in a contiguous buffer of its own shape (copying a view)."""
        realized = self.realize(value)
        if isinstance(realized, Buffer) and realized.layout.is_contiguous():
            return realized
        if isinstance(realized, ReinterpretView) and realized.layout.is_contiguous():
            return realized.data
        return self.compute(value.get_size(), value.dtype, value.make_loader())

    def compute(
        self, size: Sequence[sympy.Expr], dtype: torch.dtype, loader: Any
    ) -> ComputedBuffer:
        """A new buffer that a Pointwise kernel fills from |loader|."""
        size = [sympy.sympify(s) for s in size]
        data = Pointwise(list(size), dtype, loader)
        buffer = ComputedBuffer(
            self.new_name(), dtype, Layout.contiguous(size), BufferKind.COMPUTED, self.origins, data
        )
        self.nodes.append(buffer)
        return buffer

    def reduce(self, reduction: Reduction) -> ComputedBuffer:
        """Realizes |reduction| into a new contiguous buffer of its ranges."""
        buffer = ComputedBuffer(
            self.new_name(),
            reduction.dtype,
            Layout.contiguous(reduction.ranges),
            BufferKind.COMPUTED,
            self.origins,
            reduction,
        )
        self.nodes.append(buffer)
        return buffer

    def extern(
        self,
        kind: str,
        inputs: Sequence[Buffer | ReinterpretView],
        outputs: Sequence[tuple[Sequence[sympy.Expr], torch.dtype]],
        params: dict[str, Any] | None = None,
    ) -> list[Buffer]:
        """Records an ExternKernel call of |kind| and returns its output
        buffers (contiguous, one per (sizes, dtype) in |outputs|)."""
        out_buffers = [
            Buffer(
                self.new_name(),
                dtype,
                Layout.contiguous(list(size)),
                BufferKind.COMPUTED,
                self.origins,
            )
            for size, dtype in outputs
        ]
        node = ExternKernel(
            self.new_name("extern"),
            kind,
            list(inputs),
            out_buffers,
            dict(params or {}),
            self.origins,
        )
        self.nodes.append(node)
        return out_buffers
