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
    WelfordReduction,
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

    def reduce_welford(
        self,
        ranges: Sequence[sympy.Expr],
        reduction_ranges: Sequence[sympy.Expr],
        inner_fn: Any,
        dtype: torch.dtype,
    ) -> tuple[ComputedBuffer, ComputedBuffer]:
        """(mean, m2) of inner_fn's |dtype| values over |reduction_ranges|, for
        each index of |ranges|: one Welford pass, two buffers recorded
        consecutively ([Note: multi-output reductions])."""
        ranges = [sympy.sympify(s) for s in ranges]
        reduction_ranges = [sympy.sympify(s) for s in reduction_ranges]
        group = self.new_name()
        buffers = []
        for k in range(2):
            data = WelfordReduction(
                list(ranges),
                dtype,
                list(reduction_ranges),
                "welford",
                inner_fn,
                dtype,
                output_index=k,
                group=group,
            )
            name = group if k == 0 else self.new_name()
            buffer = ComputedBuffer(
                name, dtype, Layout.contiguous(ranges), BufferKind.COMPUTED, self.origins, data
            )
            self.nodes.append(buffer)
            buffers.append(buffer)
        return buffers[0], buffers[1]

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
