"""The buffer table: which slot of the per-run pointer array ``buf[]`` holds
each buffer.

[Note: buffer table] Kernels find memory through ``ctx.buf[id]``
(aotc_cpu.h, KernelContext). The wrapper's run() fills the table once per run:
inputs from the run arguments, constants from the bindings kept at create(),
outputs from the run arguments, workspace buffers as workspace + offset. LOCAL
buffers live in registers inside one kernel and get no slot. Ids are dense and
deterministic: inputs, constants and outputs in their ABI order, then the
workspace buffers in the scheduler's placement order.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from ...scheduler.schedule import Placement, Schedule, Storage

_STORAGE_ORDER = {Storage.INPUT: 0, Storage.CONSTANT: 1, Storage.OUTPUT: 2, Storage.WORKSPACE: 3}


@dataclass(frozen=True)
class BufferSlot:
    id: int
    name: str
    placement: Placement


def buffer_slots(schedule: Schedule) -> list[BufferSlot]:
    """Every non-LOCAL buffer of |schedule| with its id, in id order."""
    placed = [
        (name, p) for name, p in schedule.placements.items() if p.storage is not Storage.LOCAL
    ]
    # Stable sort: workspace buffers keep the scheduler's order.
    placed.sort(
        key=lambda item: (
            _STORAGE_ORDER[item[1].storage],
            item[1].index if item[1].storage is not Storage.WORKSPACE else 0,
        )
    )
    return [BufferSlot(k, name, p) for k, (name, p) in enumerate(placed)]


def assign_buffer_ids(schedule: Schedule) -> dict[str, int]:
    """Buffer name -> id in ``buf[]`` for every non-LOCAL buffer."""
    return {slot.name: slot.id for slot in buffer_slots(schedule)}


def check_placements(schedule: Schedule) -> None:
    """Raises ValueError when placements contradict the graph: every input,
    constant and output must be placed where the ABI puts it."""
    graph = schedule.graph
    expected: list[tuple[str, Storage, int]] = []
    expected += [(b.name, Storage.INPUT, i) for i, b in enumerate(graph.inputs)]
    expected += [(c.buffer.name, Storage.CONSTANT, i) for i, c in enumerate(graph.constants)]
    expected += [(b.name, Storage.OUTPUT, i) for i, b in enumerate(graph.outputs)]
    for name, storage, index in expected:
        p = schedule.placements.get(name)
        if p is None:
            continue  # unused by every kernel: no slot needed
        if p.storage is not storage or p.index != index:
            raise ValueError(
                f"buffer {name} is placed in {p.storage.value} {p.index}, "
                f"expected {storage.value} {index}"
            )
    for name, p in schedule.placements.items():
        if p.storage is Storage.WORKSPACE and not isinstance(p.offset, sympy.Expr | int):
            raise ValueError(f"buffer {name}: workspace offset {p.offset!r} is not an expression")
