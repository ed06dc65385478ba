"""Fusion: groups the graph's compute nodes into LoopKernels.

[Note: fusion rules] The scheduler walks graph.nodes in order and keeps one
open group (a LoopKernel in the making) with a loop structure (outer, inner):
- an ExternKernel closes the group and becomes an ExternCall;
- a group started by a Pointwise over R has (outer, inner) = (R, []); one
  started by a Reduction has (ranges, reduction_ranges);
- a node *fits* the structure when it is
    a Reduction with ranges == outer and reduction_ranges == inner,
    a Pointwise with ranges == outer + inner (an inner loop), or
    a Pointwise with ranges == outer (one element per outer index),
  where "==" compares sympy sizes after dropping literal size-1 dims (keepdim
  reductions give [N, 1]; the pointwise that reads them is [N, M]). A node
  that only fits up to size-1 dims is placed in the kernel as a reshaped copy
  (same name, dtype and memory; ranges and layout spelled exactly as the
  kernel's structure, its body ignoring the index of the size-1 dims), so
  kernel.nodes always obeys LoopKernel's contract literally;
- a fitting node joins only if every load it makes of a buffer written earlier
  in the group is *aligned*: evaluated at the group's loop variables (outer
  i0.., inner r0.., 0 for size-1 dims), the load index equals the index the
  producer stores to at the same iteration. Anything else (a transposed or
  shifted read, a gather) closes the group: the value may not be computed
  yet by another parallel outer iteration;
- a Pointwise over outer + inner never joins a group whose outer is empty
  (after dropping size-1 dims): that kernel has a single outer iteration, so
  the pointwise loop would lose its parallelism. A Reduction with reduction
  dims never joins a pointwise group (inner == []) as it is;
- when a Reduction does not fit a pointwise group but its ranges +
  reduction_ranges equal the group's outer (up to size-1 dims), the group is
  rebuilt with the reduction's structure, its pointwise nodes becoming inner
  loops (prologue fusion: the reduction reads what the loop just computed).
  The rebuild is kept only if every node still fits and reads aligned.
- the outputs of one Welford reduction (recorded consecutively, same
  structure, same loads) therefore always share a group; this is asserted,
  and codegen computes them in one pass ([Note: multi-output reductions]).
Everything else starts a new group; nodes are never reordered. Consecutive
independent pointwise nodes over the same range share a kernel (horizontal
fusion) by the same rules.

A buffer written by a LoopKernel is *local* (never materialised) when it is
not a graph output or a mutation's new value, and every node that reads it,
in the whole graph (extern inputs included), is in that kernel. Reads inside
the kernel are aligned by the joining rule above. A local Pointwise over
outer + inner may be read by inner loops on both sides of a reduction that
reads it (h, sum(h), h / sum(h)): its "current inner element" then exists in
each of those loops only if codegen computes it there (inlines its body).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy

from ..ir.graph import LoweredGraph
from ..ir.nodes import (
    Buffer,
    ComputedBuffer,
    ExternKernel,
    Layout,
    Pointwise,
    Reduction,
    WelfordReduction,
)
from ..ir.symbols import index_vars, reduction_vars
from .bytes import Load, node_reads, record_loads
from .schedule import ExternCall, LoopKernel

Sizes = tuple[sympy.Expr, ...]


def same_expr(a: sympy.Expr, b: sympy.Expr) -> bool:
    a, b = sympy.sympify(a), sympy.sympify(b)
    return bool(a == b or sympy.expand(a - b) == 0)


def same_sizes(a: Sequence[sympy.Expr], b: Sequence[sympy.Expr]) -> bool:
    return len(a) == len(b) and all(same_expr(x, y) for x, y in zip(a, b, strict=True))


def _is_one(size: sympy.Expr) -> bool:
    return sympy.sympify(size) == 1


def _squeezed(sizes: Sequence[sympy.Expr]) -> list[sympy.Expr]:
    return [s for s in sizes if not _is_one(s)]


def remap_index(
    own: Sequence[sympy.Expr], target: Sequence[sympy.Expr], index: Sequence[sympy.Expr]
) -> list[sympy.Expr] | None:
    """|index| over sizes |target| as an index over sizes |own|, when the two
    differ only by size-1 dims (those get index 0); None otherwise."""
    own_dims = [k for k, s in enumerate(own) if not _is_one(s)]
    target_dims = [k for k, s in enumerate(target) if not _is_one(s)]
    if len(own_dims) != len(target_dims):
        return None
    if not all(same_expr(own[a], target[b]) for a, b in zip(own_dims, target_dims, strict=True)):
        return None
    out: list[sympy.Expr] = [sympy.Integer(0)] * len(own)
    for a, b in zip(own_dims, target_dims, strict=True):
        out[a] = index[b]
    return out


@dataclass(frozen=True)
class Structure:
    """A kernel's loop structure; its canonical loop variables are i0.. for
    outer and r0.. for inner, with 0 for size-1 dims."""

    outer: Sizes
    inner: Sizes

    def outer_vars(self) -> list[sympy.Expr]:
        names = index_vars(len(self.outer))
        return [
            sympy.Integer(0) if _is_one(s) else v for s, v in zip(self.outer, names, strict=True)
        ]

    def inner_vars(self) -> list[sympy.Expr]:
        names = reduction_vars(len(self.inner))
        return [
            sympy.Integer(0) if _is_one(s) else v for s, v in zip(self.inner, names, strict=True)
        ]

    @staticmethod
    def of(node: ComputedBuffer) -> Structure:
        data = node.data
        if isinstance(data, Reduction):
            return Structure(tuple(data.ranges), tuple(data.reduction_ranges))
        return Structure(tuple(data.ranges), ())


@dataclass
class Fit:
    """How a node sits in a structure: |placed| is the node as the kernel
    holds it; |index|/|rindex| are the arguments, over the node's own ranges,
    that its body sees at the structure's canonical variables."""

    placed: ComputedBuffer
    index: list[sympy.Expr]
    rindex: list[sympy.Expr]

    def loads(self, original: ComputedBuffer) -> list[Load]:
        return record_loads(original.data, self.index, self.rindex)

    def store_index(self, original: ComputedBuffer) -> sympy.Expr:
        return sympy.expand(original.layout.index(self.index))


def fit(structure: Structure, node: ComputedBuffer) -> Fit | None:
    """Whether |node| fits |structure| (see [Note: fusion rules])."""
    data = node.data
    outer, inner = list(structure.outer), list(structure.inner)
    ovars, ivars = structure.outer_vars(), structure.inner_vars()
    if isinstance(data, Reduction):
        if data.reduction_ranges and not inner:
            return None  # a reduction loop never hides in a pointwise kernel
        index = remap_index(data.ranges, outer, ovars)
        rindex = remap_index(data.reduction_ranges, inner, ivars)
        if index is None or rindex is None:
            return None
        return _placed(node, outer, inner, index, rindex)
    literal_full = bool(inner) and same_sizes(data.ranges, outer + inner)
    over_outer = remap_index(data.ranges, outer, ovars)
    if over_outer is not None and not literal_full:
        return _placed(node, outer, None, over_outer, [])
    if not _squeezed(outer):
        return None  # one outer iteration: keep the pointwise loop parallel
    over_full = remap_index(data.ranges, outer + inner, ovars + ivars)
    if over_full is None:
        return None
    return _placed(node, outer + inner, None, over_full, [])


def _placed(
    node: ComputedBuffer,
    ranges: list[sympy.Expr],
    reduction_ranges: list[sympy.Expr] | None,
    index: list[sympy.Expr],
    rindex: list[sympy.Expr],
) -> Fit | None:
    data = node.data
    literal = same_sizes(data.ranges, ranges) and (
        reduction_ranges is None
        or (isinstance(data, Reduction) and same_sizes(data.reduction_ranges, reduction_ranges))
    )
    if literal:
        return Fit(node, index, rindex)
    placed = reshaped(node, ranges, reduction_ranges)
    return None if placed is None else Fit(placed, index, rindex)


def reshaped(
    node: ComputedBuffer, ranges: list[sympy.Expr], reduction_ranges: list[sympy.Expr] | None
) -> ComputedBuffer | None:
    """A copy of |node| over |ranges| (and |reduction_ranges|), which differ
    from its own only by size-1 dims: same name and memory, body reindexed."""
    data = node.data
    own = list(data.ranges)
    if not same_sizes(node.layout.sizes, own):
        return None  # a layout that does not follow the ranges: leave it alone
    new_data: Pointwise | Reduction
    if isinstance(data, Reduction):
        assert reduction_ranges is not None
        reduction, reindex = data, _reindexer(own, ranges)
        rreindex = _reindexer(data.reduction_ranges, reduction_ranges)

        def reduction_fn(
            ops: Any, index: Sequence[sympy.Expr], rindex: Sequence[sympy.Expr]
        ) -> Any:
            return reduction.inner_fn(ops, reindex(index), rreindex(rindex))

        # (dataclasses.replace keeps a WelfordReduction's output and group)
        new_data = dataclasses.replace(
            data,
            ranges=list(ranges),
            reduction_ranges=list(reduction_ranges),
            inner_fn=reduction_fn,
        )
    else:
        pointwise, reindex = data, _reindexer(own, ranges)

        def pointwise_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return pointwise.inner_fn(ops, reindex(index))

        new_data = Pointwise(list(ranges), data.dtype, pointwise_fn)
    return ComputedBuffer(
        node.name,
        node.dtype,
        _reshaped_layout(node.layout, ranges),
        node.kind,
        node.origins,
        new_data,
    )


def _reindexer(
    own: Sequence[sympy.Expr], target: Sequence[sympy.Expr]
) -> Callable[[Sequence[sympy.Expr]], list[sympy.Expr]]:
    """remap_index(own, target, .) for sizes already known to match."""
    own, target = list(own), list(target)

    def reindex(index: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        out = remap_index(own, target, index)
        assert out is not None, "sizes were matched when the node was fitted"
        return out

    return reindex


def _reshaped_layout(layout: Layout, sizes: list[sympy.Expr]) -> Layout:
    if layout.is_contiguous():
        return Layout.contiguous(sizes)
    strides = remap_index(sizes, list(layout.sizes), list(layout.strides))
    assert strides is not None
    return Layout(tuple(sizes), tuple(strides), layout.offset)


@dataclass
class Group:
    """An open LoopKernel: its structure, nodes (as placed) and, for every
    buffer written so far, the index it is stored at (canonical variables)."""

    structure: Structure
    originals: list[ComputedBuffer] = field(default_factory=list)
    placed: list[ComputedBuffer] = field(default_factory=list)
    stores: dict[str, sympy.Expr] = field(default_factory=dict)

    def try_add(self, node: ComputedBuffer) -> bool:
        where = fit(self.structure, node)
        if where is None:
            return False
        for load in where.loads(node):
            store = self.stores.get(load.name)
            if store is not None and not same_expr(load.index, store):
                return False
        self.originals.append(node)
        self.placed.append(where.placed)
        self.stores[node.name] = where.store_index(node)
        return True

    @staticmethod
    def build(structure: Structure, nodes: Sequence[ComputedBuffer]) -> Group | None:
        group = Group(structure)
        return group if all(group.try_add(node) for node in nodes) else None

    def is_pointwise(self) -> bool:
        return not self.structure.inner


def group_nodes(graph: LoweredGraph) -> list[Group | ExternKernel]:
    """graph.nodes in order, compute nodes grouped per [Note: fusion rules]."""
    out: list[Group | ExternKernel] = []
    group: Group | None = None
    for node in graph.nodes:
        if isinstance(node, ExternKernel):
            group = None
            out.append(node)
            continue
        if group is not None and group.try_add(node):
            continue
        if group is not None and group.is_pointwise() and isinstance(node.data, Reduction):
            rebuilt = _rebuild_for(group, node)
            if rebuilt is not None:
                out[-1] = group = rebuilt
                continue
        _check_welford_sibling(group, node)
        group = Group.build(Structure.of(node), [node])
        if group is None:
            raise AssertionError(f"{node.name} does not fit its own loop structure")
        out.append(group)
    return out


def _check_welford_sibling(group: Group | None, node: ComputedBuffer) -> None:
    """A Welford output after the first joins the kernel of the first: same
    structure, same loads, nothing between them ([Note: multi-output
    reductions]); codegen relies on it to compute them in one pass."""
    data = node.data
    if not isinstance(data, WelfordReduction) or data.output_index == 0:
        return
    if group is None or not any(
        isinstance(n.data, WelfordReduction) and n.data.group == data.group for n in group.originals
    ):
        raise AssertionError(
            f"{node.name}: Welford output {data.output_index} of {data.group} is not in the "
            "kernel of its first output"
        )


def _rebuild_for(group: Group, reduction: ComputedBuffer) -> Group | None:
    """|group| (pointwise) rebuilt with |reduction|'s structure, the reduction
    joined; None if that is not possible."""
    structure = Structure.of(reduction)
    full = _squeezed([*structure.outer, *structure.inner])
    if not same_sizes(full, _squeezed(group.structure.outer)):
        return None
    return Group.build(structure, [*group.originals, reduction])


def fuse(graph: LoweredGraph) -> list[LoopKernel | ExternCall]:
    """The graph's kernels in order, with each LoopKernel's local buffers
    (bytes are counted later, by bytes.kernel_bytes)."""
    kernels: list[LoopKernel | ExternCall] = []
    loops = 0
    for item in group_nodes(graph):
        if isinstance(item, ExternKernel):
            kernels.append(ExternCall(item.name, item))
            continue
        outer, inner = list(item.structure.outer), list(item.structure.inner)
        kernels.append(LoopKernel(f"kernel{loops}", item.placed, outer, inner))
        loops += 1
    _mark_locals(graph, kernels)
    return kernels


def loop_args(
    kernel: LoopKernel, node: ComputedBuffer
) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """(index, rindex) that |node|'s body sees at |kernel|'s canonical loop
    variables (kernel.nodes obey LoopKernel's contract literally)."""
    structure = Structure(tuple(kernel.outer), tuple(kernel.inner))
    outer, inner = structure.outer_vars(), structure.inner_vars()
    if isinstance(node.data, Reduction):
        return outer, inner
    if len(node.data.ranges) == len(kernel.outer):
        return outer, []
    return outer + inner, []


def readers(kernels: Sequence[LoopKernel | ExternCall]) -> dict[str, set[int]]:
    """Buffer name -> indices of the kernels that read it."""
    read_by: dict[str, set[int]] = {}
    for k, kernel in enumerate(kernels):
        for name in kernel_reads(kernel):
            read_by.setdefault(name, set()).add(k)
    return read_by


def kernel_reads(kernel: LoopKernel | ExternCall) -> set[str]:
    if isinstance(kernel, ExternCall):
        names = {
            view.name if isinstance(view, Buffer) else view.data.name for view in kernel.node.inputs
        }
        return names | (kernel_reads(kernel.epilogue) if kernel.epilogue else set())
    names = set()
    for node in kernel.nodes:
        names |= node_reads(node)
    return names


def live_at_end(graph: LoweredGraph) -> set[str]:
    """Buffers read after the last kernel: outputs and mutations' new values."""
    names = {buf.name for buf in graph.outputs}
    names |= {buf.name for _, buf in graph.input_mutations}
    names |= {buf.name for _, buf in graph.state_mutations}
    return names


def _mark_locals(graph: LoweredGraph, kernels: list[LoopKernel | ExternCall]) -> None:
    read_by = readers(kernels)
    keep = live_at_end(graph)
    for k, kernel in enumerate(kernels):
        if not isinstance(kernel, LoopKernel):
            continue
        for node in kernel.nodes:
            if node.name not in keep and read_by.get(node.name, set()) <= {k}:
                kernel.local.add(node.name)
