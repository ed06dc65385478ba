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
    def __init__(self, device: str = "cpu") -> None:
        # The package's device: lowering is device-neutral except for which
        # dtypes the extern kernels take (extern.kernel_dtypes).
        self.device = device
        self.nodes: list[ComputedBuffer | ExternKernel] = []
        self._counts: dict[str, int] = {}
        # FX node names of the op being lowered (provenance rides on nodes):
        # the node itself (|node|) and the unrealized values it reads.
        self.origins: tuple[str, ...] = ()
        self.node: str | None = None
        # Origins of inputs this lowering realized into buffers of their own:
        # that work is no longer part of what the node's own kernel computes.
        self.realized: set[str] = set()
        # [Note: inlined origins] An unrealized value (a Pointwise, a view) is
        # inlined into whatever kernel reads it, so its nodes belong to that
        # kernel's origins. id(value) -> (value, the FX nodes it inlines); the
        # value is held so that its id is never reused while lowering runs.
        self._inlined: dict[int, tuple[Any, tuple[str, ...]]] = {}

    def note_inlined(self, value: Any, origins: tuple[str, ...]) -> None:
        """Records that the unrealized |value| computes the FX nodes |origins|."""
        if isinstance(value, list | tuple):
            for v in value:
                self.note_inlined(v, origins)
        elif value is not None and not isinstance(value, Buffer):
            self._inlined[id(value)] = (value, origins)

    def start_node(self, node: str, origins: tuple[str, ...]) -> None:
        """Starts lowering the FX node |node|, which computes |origins|."""
        self.node, self.origins, self.realized = node, origins, set()

    def live_origins(self) -> tuple[str, ...]:
        """The origins of what the current node computes itself: its own name
        and the inlined values it did not realize into separate buffers."""
        return tuple(o for o in self.origins if o == self.node or o not in self.realized)

    def inlined_origins(self, value: Any) -> tuple[str, ...]:
        """The FX nodes an unrealized |value| (or the values in a list of them)
        inlines; () for a Buffer or a non-tensor."""
        if isinstance(value, list | tuple):
            out: list[str] = []
            for v in value:
                out += [o for o in self.inlined_origins(v) if o not in out]
            return tuple(out)
        entry = self._inlined.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else ()

    def new_name(self, prefix: str = "buf") -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}{n}"

    def realize(self, value: TensorValue) -> Buffer | ReinterpretView:
        """|value| in memory: Buffers and strided views stay as they are;
        anything else is computed into a new contiguous buffer."""
        if isinstance(value, Buffer | ReinterpretView):
            return value
        return self._compute_value(value)

    def realize_contiguous(self, value: TensorValue) -> Buffer:
        """|value| in a contiguous buffer of its own shape (copying a view)."""
        realized = self.realize(value)
        if isinstance(realized, Buffer) and realized.layout.is_contiguous():
            return realized
        if (
            isinstance(realized, ReinterpretView)
            and realized.layout.is_contiguous()
            # A contiguous prefix (src[:6]) is not the whole buffer.
            and sympy.simplify(realized.layout.numel() - realized.data.layout.numel()) == 0
        ):
            return realized.data
        return self._compute_value(value)

    def _compute_value(self, value: TensorValue) -> ComputedBuffer:
        """|value| computed into a new buffer whose origins are the nodes the
        value inlines (an input realized by the op being lowered is still the
        work of the nodes that made it)."""
        own = self.inlined_origins(value)
        if not own:
            return self.compute(value.get_size(), value.dtype, value.make_loader())
        self.realized.update(o for o in own if o != self.node)
        return self.compute(value.get_size(), value.dtype, value.make_loader(), origins=own)

    def compute(
        self,
        size: Sequence[sympy.Expr],
        dtype: torch.dtype,
        loader: Any,
        origins: tuple[str, ...] | None = None,
    ) -> ComputedBuffer:
        """A new buffer that a Pointwise kernel fills from |loader| (computing
        the FX nodes |origins|, by default the current node's)."""
        size = [sympy.sympify(s) for s in size]
        data = Pointwise(list(size), dtype, loader)
        origins = self.live_origins() if origins is None else origins
        buffer = ComputedBuffer(
            self.new_name(), dtype, Layout.contiguous(size), BufferKind.COMPUTED, origins, data
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
            self.live_origins(),
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
                name,
                dtype,
                Layout.contiguous(ranges),
                BufferKind.COMPUTED,
                self.live_origins(),
                data,
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
                self.live_origins(),
            )
            for size, dtype in outputs
        ]
        node = ExternKernel(
            self.new_name("extern"),
            kind,
            list(inputs),
            out_buffers,
            dict(params or {}),
            self.live_origins(),
        )
        self.nodes.append(node)
        return out_buffers
