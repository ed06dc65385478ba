"""The Triton codegen stage: every kernel of a schedule as TritonKernels
([Note: Triton launches]), loop kernels by loop_kernel.py and extern calls by
the templates/ family of their kind."""

from __future__ import annotations

from collections.abc import Sequence

from ...scheduler.schedule import LoopKernel, Schedule
from ..cpp.kernel import graph_buffer_dtypes
from .context import TritonContext
from .launch import TritonCodegenError, TritonKernel


def generate_triton(schedule: Schedule, handles: Sequence[str]) -> list[list[TritonKernel]]:
    """The launches of each of |schedule|'s kernels, in order; |handles| are
    their debug handles (wrapper.debug_handles). Raises TritonCodegenError
    naming the kernel and handle for what the backend cannot generate."""
    from . import loop_kernel
    from .templates import TEMPLATES

    graph = schedule.graph
    ctx = TritonContext(graph_buffer_dtypes(graph), [s.symbol for s in graph.symbols])
    out: list[list[TritonKernel]] = []
    for kernel, handle in zip(schedule.kernels, handles, strict=True):
        try:
            if isinstance(kernel, LoopKernel):
                out.append(loop_kernel.generate_loop_kernel(kernel, ctx, handle))
                continue
            template = TEMPLATES.get(kernel.node.kind)
            if template is None:
                raise TritonCodegenError(
                    f"{kernel.node.kind} has no GPU kernel yet (it runs on cpu packages only)"
                )
            epilogue = None
            if kernel.epilogue is not None:
                epilogue = loop_kernel.generate_epilogue(
                    kernel.epilogue,
                    kernel.node.outputs[0].name,
                    ctx,
                    shares_product=kernel.epilogue_shares is not None,
                )
            out.append(template(kernel, ctx, epilogue))
        except TritonCodegenError as e:
            origins = getattr(kernel, "node", None)
            where = ", ".join(origins.origins) if origins is not None else ""
            e.args = (f"{handle}{f' ({where})' if where else ''}: {e}",)
            raise
    names = [k.name for launches in out for k in launches]
    if len(set(names)) != len(names):
        raise TritonCodegenError(f"Triton kernel names are not unique: {names}")
    return out
