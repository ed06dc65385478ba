"""Scheduler tests: hand-built LoweredGraphs in, fusion, locals, placements,
workspace and bytes out. No device, no torch model: bodies are written with
ops calls the way lowering writes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import sympy
import torch

from aot.ir.graph import Constant, LoweredGraph
from aot.ir.nodes import (
    Buffer,
    BufferKind,
    ComputedBuffer,
    ExternKernel,
    Layout,
    Pointwise,
    Reduction,
    ReinterpretView,
    WelfordReduction,
)
from aot.ir.ops import OP_NAMES, PrintHandler
from aot.ir.symbols import (
    FloorDiv,
    ModularIndexing,
    index_vars,
    merge_div_mod,
    reduction_vars,
    size_symbol,
)
from aot.lowering import norms
from aot.lowering.context import LoweringContext
from aot.scheduler import ExternCall, LoopKernel, Schedule, Storage, schedule
from aot.scheduler.bytes import LoadRecorder, record_loads
from aot.scheduler.memory import Arena, aligned_size

F32 = torch.float32
Ix = Sequence[sympy.Expr]


# -- graph building helpers ----------------------------------------------------
def _sizes(sizes: Sequence[Any]) -> list[sympy.Expr]:
    return [sympy.sympify(s) for s in sizes]


def inp(name: str, sizes: Sequence[Any], kind: BufferKind = BufferKind.INPUT) -> Buffer:
    return Buffer(name, F32, Layout.contiguous(_sizes(sizes)), kind)


def pointwise(name: str, sizes: Sequence[Any], fn: Callable[[Any, Ix], Any]) -> ComputedBuffer:
    ranges = _sizes(sizes)
    data = Pointwise(ranges, F32, fn)
    return ComputedBuffer(name, F32, Layout.contiguous(ranges), BufferKind.COMPUTED, (), data)


def reduction(
    name: str,
    ranges: Sequence[Any],
    reduction_ranges: Sequence[Any],
    reduction_type: str,
    fn: Callable[[Any, Ix, Ix], Any],
) -> ComputedBuffer:
    sizes = _sizes(ranges)
    data = Reduction(sizes, F32, _sizes(reduction_ranges), reduction_type, fn)
    return ComputedBuffer(name, F32, Layout.contiguous(sizes), BufferKind.COMPUTED, (), data)


def expand(buf: Buffer, sizes: Sequence[Any]) -> ReinterpretView:
    """|buf| (with size-1 or missing leading dims) broadcast to |sizes|."""
    own = list(buf.layout.sizes)
    strides = list(buf.layout.strides)
    pad = len(sizes) - len(own)
    own, strides = [sympy.Integer(1)] * pad + own, [sympy.Integer(0)] * pad + strides
    new_strides = [0 if s == 1 else st for s, st in zip(own, strides, strict=True)]
    return ReinterpretView(buf, Layout(tuple(_sizes(sizes)), tuple(_sizes(new_strides))))


def rows(buf: Buffer, n: int, m: int) -> ReinterpretView:
    """A per-row value ([n] or [n, 1]) broadcast along the rows of [n, m]."""
    return ReinterpretView(buf, Layout(tuple(_sizes([n, m])), tuple(_sizes([1, 0]))))


def make_graph(
    inputs: list[Buffer],
    nodes: list[ComputedBuffer | ExternKernel],
    outputs: list[Buffer],
    constants: list[Buffer] = (),  # type: ignore[assignment]
) -> LoweredGraph:
    consts = [Constant(b.name, b, torch.zeros(1)) for b in constants]
    return LoweredGraph(
        "test",
        inputs,
        [b.name for b in inputs],
        consts,
        nodes,
        outputs,
        [f"out{i}" for i in range(len(outputs))],
    )


def loop_kernels(sched: Schedule) -> list[LoopKernel]:
    return [k for k in sched.kernels if isinstance(k, LoopKernel)]


def where(sched: Schedule, name: str) -> tuple[Storage, int, sympy.Expr]:
    p = sched.placements[name]
    return p.storage, p.index, p.offset


# -- softmax and layer norm: one kernel each -------------------------------------
def softmax_graph(keepdim: bool) -> LoweredGraph:
    n, m = 8, 16
    x = inp("x", [n, m])
    xl = x.make_loader()
    per_row = [n, 1] if keepdim else [n]
    amax = reduction("buf0", per_row, [m], "max", lambda ops, i, r: xl(ops, [i[0], r[0]]))
    amax_b = rows(amax, n, m).make_loader()

    def shifted_exp(ops: Any, i: Ix) -> Any:
        return ops.exp(ops.sub(xl(ops, i), amax_b(ops, i)))

    total = reduction("buf1", per_row, [m], "sum", lambda ops, i, r: shifted_exp(ops, [i[0], r[0]]))
    total_b = rows(total, n, m).make_loader()
    out = pointwise(
        "buf2", [n, m], lambda ops, i: ops.truediv(shifted_exp(ops, i), total_b(ops, i))
    )
    return make_graph([x], [amax, total, out], [out])


@pytest.mark.parametrize("keepdim", [True, False])
def test_softmax_is_one_kernel_with_local_reductions(keepdim: bool) -> None:
    graph = softmax_graph(keepdim)
    sched = schedule(graph)
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.name == "kernel0"
    assert kernel.outer == ([8, 1] if keepdim else [8]) and kernel.inner == [16]
    assert [node.name for node in kernel.nodes] == ["buf0", "buf1", "buf2"]
    assert kernel.local == {"buf0", "buf1"}
    assert where(sched, "x") == (Storage.INPUT, 0, 0)
    assert where(sched, "buf2") == (Storage.OUTPUT, 0, 0)
    assert sched.placements["buf0"].storage is Storage.LOCAL
    assert sched.placements["buf1"].storage is Storage.LOCAL
    assert sched.workspace_bytes == 0
    # x read once (its three reads count once), the output written once.
    assert kernel.bytes_read == 8 * 16 * 4
    assert kernel.bytes_written == 8 * 16 * 4


def test_softmax_keepdim_node_is_placed_over_the_kernels_ranges() -> None:
    graph = softmax_graph(keepdim=True)
    (kernel,) = schedule(graph).kernels
    assert isinstance(kernel, LoopKernel)
    # The reductions fit literally and are the graph's own nodes; the
    # normalisation [8, 16] is placed as [8, 1, 16] (same name and memory).
    assert kernel.nodes[0] is graph.nodes[0] and kernel.nodes[1] is graph.nodes[1]
    placed = kernel.nodes[2]
    assert placed is not graph.nodes[2] and placed.name == "buf2"
    assert isinstance(placed.data, Pointwise)
    assert placed.data.ranges == [8, 1, 16]
    assert placed.layout.sizes == (8, 1, 16)
    i0, i1, r0 = (*index_vars(2), reduction_vars(1)[0])
    original = graph.nodes[2]
    assert isinstance(original, ComputedBuffer) and isinstance(original.data, Pointwise)
    assert placed.layout.index([i0, 0, r0]) == original.layout.index([i0, r0])
    assert placed.data.inner_fn(PrintHandler(), [i0, i1, r0]) == original.data.inner_fn(
        PrintHandler(), [i0, r0]
    )


def layer_norm_graph(residual: bool) -> LoweredGraph:
    n, m, eps = 4, 32, 1e-5
    x, y = inp("x", [n, m]), inp("y", [n, m])
    w, b = inp("w", [m], BufferKind.CONSTANT), inp("b", [m], BufferKind.CONSTANT)
    nodes: list[ComputedBuffer | ExternKernel] = []
    outputs: list[Buffer] = []
    src = x.make_loader()
    if residual:  # h = x + y, an output of its own, then layer_norm(h)
        xl, yl = x.make_loader(), y.make_loader()
        h = pointwise("h", [n, m], lambda ops, i: ops.add(xl(ops, i), yl(ops, i)))
        nodes.append(h)
        outputs.append(h)
        src = h.make_loader()
    total = reduction("sum", [n], [m], "sum", lambda ops, i, r: src(ops, [i[0], r[0]]))
    total_l = total.make_loader()
    mean = pointwise("mean", [n], lambda ops, i: ops.mul(total_l(ops, i), ops.constant(1 / m, F32)))
    mean_b = rows(mean, n, m).make_loader()

    def centered(ops: Any, i: Ix) -> Any:
        return ops.sub(src(ops, i), mean_b(ops, i))

    def square(ops: Any, i: Ix, r: Ix) -> Any:
        c = centered(ops, [i[0], r[0]])
        return ops.mul(c, c)

    var = reduction("var", [n], [m], "sum", square)
    var_b = rows(var, n, m).make_loader()
    wl, bl = expand(w, [n, m]).make_loader(), expand(b, [n, m]).make_loader()

    def affine(ops: Any, i: Ix) -> Any:
        scale = ops.mul(var_b(ops, i), ops.constant(1 / m, F32))
        inv = ops.rsqrt(ops.add(scale, ops.constant(eps, F32)))
        return ops.add(ops.mul(ops.mul(centered(ops, i), inv), wl(ops, i)), bl(ops, i))

    out = pointwise("out", [n, m], affine)
    nodes += [total, mean, var, out]
    inputs = [x, y] if residual else [x]
    return make_graph(inputs, nodes, [*outputs, out], constants=[w, b])


def test_layer_norm_is_one_kernel() -> None:
    sched = schedule(layer_norm_graph(residual=False))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.outer == [4] and kernel.inner == [32]
    assert [node.name for node in kernel.nodes] == ["sum", "mean", "var", "out"]
    assert all(a is b for a, b in zip(kernel.nodes, sched.graph.nodes, strict=True))
    assert kernel.local == {"sum", "mean", "var"}
    assert where(sched, "w") == (Storage.CONSTANT, 0, 0)
    assert where(sched, "b") == (Storage.CONSTANT, 1, 0)
    assert where(sched, "out") == (Storage.OUTPUT, 0, 0)
    assert sched.workspace_bytes == 0
    assert kernel.bytes_read == 4 * 32 * 4 + 32 * 4 + 32 * 4  # x, w, b
    assert kernel.bytes_written == 4 * 32 * 4


def welford_layer_norm_graph(mean_is_output: bool) -> LoweredGraph:
    """aten.native_layer_norm as lowering writes it: one Welford reduction
    (mean, m2) and the affine epilogue reading both."""
    n, m = 4, 32
    x = inp("x", [n, m])
    w, b = inp("w", [m], BufferKind.CONSTANT), inp("b", [m], BufferKind.CONSTANT)
    ctx = LoweringContext()
    out, mean, _ = norms._layer_norm(ctx, x, [m], w, b, 1e-5)
    outputs = [ctx.realize_contiguous(out)]
    if mean_is_output:
        outputs.append(ctx.realize_contiguous(mean))
    return make_graph([x], ctx.nodes, outputs, constants=[w, b])


def test_welford_layer_norm_is_one_kernel() -> None:
    """Both Welford outputs are written by one loop kernel, local when only
    the epilogue reads them; the row is read once."""
    sched = schedule(welford_layer_norm_graph(mean_is_output=False))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.outer == [4] and kernel.inner == [32]
    mean, m2, out = kernel.nodes
    assert isinstance(mean.data, WelfordReduction) and isinstance(m2.data, WelfordReduction)
    assert (mean.data.output_index, m2.data.output_index) == (0, 1)
    assert mean.data.group == m2.data.group == mean.name
    assert kernel.local == {mean.name, m2.name}
    assert kernel.bytes_read == 4 * 32 * 4 + 2 * 32 * 4  # x once, w, b
    assert kernel.bytes_written == 4 * 32 * 4
    assert sched.workspace_bytes == 0


def test_welford_mean_output_joins_the_kernel() -> None:
    """The [4, 1] mean output (an outer pointwise copying the local mean)
    joins the same kernel."""
    sched = schedule(welford_layer_norm_graph(mean_is_output=True))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    mean, m2, out, mean_out = kernel.nodes
    assert kernel.local == {mean.name, m2.name}
    assert where(sched, mean_out.name) == (Storage.OUTPUT, 1, 0)
    assert kernel.bytes_read == 4 * 32 * 4 + 2 * 32 * 4
    assert kernel.bytes_written == 4 * 32 * 4 + 4 * 4  # out and the mean


def test_welford_outputs_never_split() -> None:
    """An m2 whose mean is in another kernel is a scheduler bug, not a silent
    second pass."""
    x = inp("x", [4, 8])
    xl = x.make_loader()
    ctx = LoweringContext()
    mean, m2 = ctx.reduce_welford(
        [sympy.Integer(4)], [sympy.Integer(8)], lambda ops, i, r: xl(ops, [i[0], r[0]]), F32
    )
    other = reduction("other", [2], [16], "sum", lambda ops, i, r: xl(ops, [i[0] * 2, r[0]]))
    graph = make_graph([x], [mean, other, m2], [mean, other, m2])
    with pytest.raises(AssertionError, match="Welford output 1"):
        schedule(graph)


def test_pointwise_prologue_joins_the_reduction_kernel() -> None:
    """h = x + y is a pointwise kernel [4, 32] until the row reduction of h
    arrives: the group is rebuilt as outer [4], inner [32]."""
    sched = schedule(layer_norm_graph(residual=True))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.outer == [4] and kernel.inner == [32]
    assert [node.name for node in kernel.nodes] == ["h", "sum", "mean", "var", "out"]
    assert kernel.local == {"sum", "mean", "var"}
    assert where(sched, "h") == (Storage.OUTPUT, 0, 0)
    assert where(sched, "out") == (Storage.OUTPUT, 1, 0)
    assert kernel.bytes_read == 2 * 4 * 32 * 4 + 2 * 32 * 4  # x, y, w, b (h is fused)
    assert kernel.bytes_written == 2 * 4 * 32 * 4  # h and out


def test_realized_pointwise_read_only_inside_the_kernel_is_local() -> None:
    """h = exp(x) realized (two readers), s = sum(h), out = h / s: one kernel
    in which h is an inner element and s a scalar, both local."""
    x = inp("x", [4, 32])
    xl = x.make_loader()
    h = pointwise("h", [4, 32], lambda ops, i: ops.exp(xl(ops, i)))
    hl = h.make_loader()
    total = reduction("s", [4], [32], "sum", lambda ops, i, r: hl(ops, [i[0], r[0]]))
    sl = rows(total, 4, 32).make_loader()
    out = pointwise("out", [4, 32], lambda ops, i: ops.truediv(hl(ops, i), sl(ops, i)))
    sched = schedule(make_graph([x], [h, total, out], [out]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.outer == [4] and kernel.inner == [32]
    assert kernel.local == {"h", "s"} and sched.workspace_bytes == 0
    assert (kernel.bytes_read, kernel.bytes_written) == (512, 512)


def test_keepdim_reduction_read_per_row_fits_as_one_element() -> None:
    """amax(x, keepdim=True) is [8, 1]; its squeezed copy [8] is one element
    per outer index, placed over the kernel's outer [8, 1]."""
    x = inp("x", [8, 16])
    xl = x.make_loader()
    amax = reduction("amax", [8, 1], [16], "max", lambda ops, i, r: xl(ops, [i[0], r[0]]))
    al = amax.make_loader()
    squeezed = pointwise("sq", [8], lambda ops, i: ops.neg(al(ops, [i[0], 0])))
    sched = schedule(make_graph([x], [amax, squeezed], [squeezed]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.local == {"amax"}
    placed = kernel.nodes[1]
    assert placed.name == "sq" and placed.data.ranges == [8, 1]
    assert (kernel.bytes_read, kernel.bytes_written) == (512, 32)


# -- pointwise -------------------------------------------------------------------
def test_cos_sin_chain_is_one_kernel() -> None:
    x = inp("x", [1024])
    xl = x.make_loader()
    out = pointwise("buf0", [1024], lambda ops, i: ops.sin(ops.cos(xl(ops, i))))
    sched = schedule(make_graph([x], [out], [out]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.outer == [1024] and kernel.inner == [] and kernel.local == set()
    assert kernel.bytes_read == 4096 and kernel.bytes_written == 4096


def test_independent_pointwise_share_a_kernel() -> None:
    x, y = inp("x", [8, 8]), inp("y", [8, 8])
    xl, yl = x.make_loader(), y.make_loader()
    a = pointwise("a", [8, 8], lambda ops, i: ops.sin(xl(ops, i)))
    b = pointwise("b", [8, 8], lambda ops, i: ops.add(ops.cos(xl(ops, i)), yl(ops, i)))
    sched = schedule(make_graph([x, y], [a, b], [a, b]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert [node.name for node in kernel.nodes] == ["a", "b"]
    assert kernel.local == set()
    assert kernel.bytes_read == 2 * 256 and kernel.bytes_written == 2 * 256
    assert where(sched, "a") == (Storage.OUTPUT, 0, 0)
    assert where(sched, "b") == (Storage.OUTPUT, 1, 0)


def test_aligned_consumer_makes_its_producer_local() -> None:
    x = inp("x", [64])
    xl = x.make_loader()
    a = pointwise("a", [64], lambda ops, i: ops.exp(xl(ops, i)))
    al = a.make_loader()
    b = pointwise("b", [64], lambda ops, i: ops.mul(al(ops, i), al(ops, i)))
    sched = schedule(make_graph([x], [a, b], [b]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.local == {"a"} and sched.placements["a"].storage is Storage.LOCAL
    assert kernel.bytes_read == 256 and kernel.bytes_written == 256


# -- what does not fuse ------------------------------------------------------------
def test_transposed_read_of_a_reduction_splits_kernels() -> None:
    x = inp("x", [8, 8, 16])
    xl = x.make_loader()
    red = reduction("red", [8, 8], [16], "sum", lambda ops, i, r: xl(ops, [i[0], i[1], r[0]]))
    transposed = ReinterpretView(red, Layout((8, 8), (1, 8))).make_loader()
    out = pointwise("out", [8, 8], lambda ops, i: ops.neg(transposed(ops, i)))
    sched = schedule(make_graph([x], [red, out], [out]))
    k0, k1 = loop_kernels(sched)
    assert len(sched.kernels) == 2
    assert [n.name for n in k0.nodes] == ["red"] and [n.name for n in k1.nodes] == ["out"]
    assert k0.outer == [8, 8] and k0.inner == [16] and k1.outer == [8, 8] and k1.inner == []
    assert k0.local == set() and k1.local == set()
    assert where(sched, "red") == (Storage.WORKSPACE, 0, 0)
    assert sched.workspace_bytes == 256
    assert (k0.bytes_read, k0.bytes_written) == (8 * 8 * 16 * 4, 256)
    assert (k1.bytes_read, k1.bytes_written) == (256, 256)


def test_extern_splits_groups() -> None:
    x, w = inp("x", [4, 4]), inp("w", [4, 4], BufferKind.CONSTANT)
    xl = x.make_loader()
    p0 = pointwise("p0", [4, 4], lambda ops, i: ops.add(xl(ops, i), ops.constant(1.0, F32)))
    e_out = Buffer("mm0", F32, Layout.contiguous(_sizes([4, 4])))
    mm = ExternKernel("extern0", "mm", [p0, ReinterpretView(w, Layout((4, 4), (1, 4)))], [e_out])
    el = e_out.make_loader()
    p1 = pointwise("p1", [4, 4], lambda ops, i: ops.mul(el(ops, i), ops.constant(2.0, F32)))
    p2 = pointwise("p2", [4, 4], lambda ops, i: ops.mul(xl(ops, i), ops.constant(3.0, F32)))
    sched = schedule(make_graph([x], [p0, mm, p1, p2], [p1, p2], constants=[w]))
    k0, call = sched.kernels
    assert isinstance(k0, LoopKernel) and isinstance(call, ExternCall)
    assert call.name == "extern0" and call.node is mm
    # p1 reads the GEMM output aligned: its kernel (p2 rides along) becomes
    # the GEMM's epilogue ([Note: epilogue fusion]). Two stored outputs: mm0
    # keeps its own memory.
    k1 = call.epilogue
    assert k1 is not None and k1.name == "kernel1"
    assert [n.name for n in k1.nodes] == ["p1", "p2"]
    assert call.epilogue_shares is None
    assert k0.local == set()  # p0 is read by the extern
    assert where(sched, "p0") == (Storage.WORKSPACE, 0, 0)
    assert where(sched, "mm0") == (Storage.WORKSPACE, 0, 64)
    assert sched.workspace_bytes == 128
    # extern: p0, w -> mm0; epilogue: x (mm0 is read in cache) -> p1, p2
    assert (call.bytes_read, call.bytes_written) == (192, 192)


def _gemm_graph(epilogue_index: Callable[[list[sympy.Expr]], list[sympy.Expr]] | None = None):
    """x @ w then relu, the relu reading the product at epilogue_index(i)."""
    x, w = inp("x", [4, 8]), inp("w", [8, 4], BufferKind.CONSTANT)
    out = Buffer("mm0", F32, Layout.contiguous(_sizes([4, 4])))
    mm = ExternKernel("extern0", "mm", [x, w], [out])
    ol = out.make_loader()
    pick = epilogue_index or (lambda i: i)
    relu = pointwise(
        "relu", [4, 4], lambda ops, i: ops.maximum(ol(ops, pick(i)), ops.constant(0.0, F32))
    )
    return make_graph([x], [mm, relu], [relu], constants=[w])


def test_epilogue_shares_the_gemm_output() -> None:
    """relu(x @ w): one call; the GEMM writes the output memory and the
    epilogue overwrites it, so the product costs no workspace or traffic."""
    sched = schedule(_gemm_graph())
    (call,) = sched.kernels
    assert isinstance(call, ExternCall) and call.epilogue is not None
    assert call.epilogue_shares == "relu"
    assert where(sched, "mm0") == where(sched, "relu") == (Storage.OUTPUT, 0, 0)
    assert sched.workspace_bytes == 0
    assert (call.bytes_read, call.bytes_written) == (4 * 8 * 4 + 8 * 4 * 4, 4 * 4 * 4)
    assert call.flops == 2 * 4 * 4 * 8 + 4 * 4  # the GEMM; one maximum per element


def test_epilogue_needs_aligned_reads() -> None:
    """relu((x @ w).t()) reads another row's elements: not an epilogue."""
    sched = schedule(_gemm_graph(lambda i: [i[1], i[0]]))
    call, kernel = sched.kernels
    assert isinstance(call, ExternCall) and call.epilogue is None
    assert isinstance(kernel, LoopKernel)


def test_full_reduction_does_not_swallow_a_big_pointwise() -> None:
    """x / x.sum(): the kernel of a full reduction has one outer iteration,
    so the pointwise over all of x gets its own (parallel) kernel."""
    x = inp("x", [64, 64])
    xl = x.make_loader()
    total = reduction("total", [], [64, 64], "sum", lambda ops, i, r: xl(ops, r))
    tl = expand(total, [64, 64]).make_loader()
    out = pointwise("out", [64, 64], lambda ops, i: ops.truediv(xl(ops, i), tl(ops, i)))
    sched = schedule(make_graph([x], [total, out], [out]))
    k0, k1 = loop_kernels(sched)
    assert k0.outer == [] and k0.inner == [64, 64] and k1.outer == [64, 64]
    assert where(sched, "total") == (Storage.WORKSPACE, 0, 0)
    assert sched.workspace_bytes == 64  # 4 bytes, one aligned block
    assert (k1.bytes_read, k1.bytes_written) == (64 * 64 * 4 + 4, 64 * 64 * 4)


def test_full_reduction_with_scalar_epilogue_is_one_kernel() -> None:
    x = inp("x", [64])
    xl = x.make_loader()
    total = reduction("total", [], [64], "sum", lambda ops, i, r: xl(ops, r))
    tl = total.make_loader()
    mean = pointwise("mean", [], lambda ops, i: ops.mul(tl(ops, i), ops.constant(1 / 64, F32)))
    sched = schedule(make_graph([x], [total, mean], [mean]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel) and kernel.local == {"total"}
    assert (kernel.bytes_read, kernel.bytes_written) == (256, 4)


# -- memory plan ---------------------------------------------------------------------
def flip_chain(n: Any, length: int) -> LoweredGraph:
    """x -> b1 -> ... -> b{length}: each reads the previous one reversed, so
    none fuses; the last is the output."""
    x = inp("x", [n, 16])
    prev: Buffer = x
    nodes: list[ComputedBuffer | ExternKernel] = []
    for k in range(1, length + 1):
        src = prev.make_loader()

        def body(ops: Any, i: Ix, src: Any = src, first: bool = k == 1) -> Any:
            index = list(i) if first else [n - 1 - i[0], i[1]]
            return ops.exp(src(ops, index))

        prev = pointwise(f"b{k}", [n, 16], body)
        nodes.append(prev)
    return make_graph([x], nodes, [prev])


def test_chain_reuses_workspace() -> None:
    sched = schedule(flip_chain(16, 4))
    assert len(sched.kernels) == 4
    block = 16 * 16 * 4
    # b1 lives over kernels 0..1, b2 over 1..2, b3 over 2..3: b3 takes b1's block.
    assert where(sched, "b1") == (Storage.WORKSPACE, 0, 0)
    assert where(sched, "b2") == (Storage.WORKSPACE, 0, block)
    assert where(sched, "b3") == (Storage.WORKSPACE, 0, 0)
    assert where(sched, "b4") == (Storage.OUTPUT, 0, 0)
    assert sched.workspace_bytes == 2 * block < 3 * block


def test_symbolic_workspace() -> None:
    s0 = size_symbol("s0")
    sched = schedule(flip_chain(s0, 4))
    block = 64 * s0  # s0 * 16 * 4 bytes, already 64-byte aligned
    assert sympy.simplify(sched.placements["b2"].offset - block) == 0
    assert sched.placements["b3"].offset == 0  # same size expression: reused
    assert sympy.simplify(sched.workspace_bytes - 2 * block) == 0
    first = loop_kernels(sched)[0]
    assert sympy.simplify(first.bytes_read - block) == 0


def test_arena_first_fit_split_and_merge() -> None:
    arena = Arena()
    assert arena.allocate("a", sympy.Integer(256)) == 0
    assert arena.allocate("b", sympy.Integer(100)) == 256  # rounded to 128
    arena.free("a")
    assert arena.allocate("c", sympy.Integer(64)) == 0  # splits a's block
    assert arena.allocate("d", sympy.Integer(128)) == 64
    assert arena.allocate("e", sympy.Integer(128)) == 384  # 64 left is too small
    arena.free("c")
    arena.free("d")
    assert arena.allocate("f", sympy.Integer(192)) == 0  # merged 64 + 128 (+64)
    arena.free("e")
    assert arena.allocate("g", sympy.Integer(512)) == 384  # grows the free tail
    assert arena.end == 896
    assert aligned_size(sympy.Integer(0)) == 0 and aligned_size(sympy.Integer(65)) == 128


def test_mutation_value_lives_to_the_end() -> None:
    # out reads the old x after new_x: new_x cannot overwrite x, so it lives
    # in the workspace until the wrapper copies it back.
    x = inp("x", [16])
    xl = x.make_loader()
    new_x = pointwise("new_x", [16], lambda ops, i: ops.add(xl(ops, i), ops.constant(1.0, F32)))
    nl = new_x.make_loader()
    out = pointwise("out", [16], lambda ops, i: ops.mul(nl(ops, i), xl(ops, i)))
    graph = make_graph([x], [new_x, out], [out])
    graph.input_mutations = [(0, new_x)]
    sched = schedule(graph)
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.local == set()
    assert where(sched, "new_x") == (Storage.WORKSPACE, 0, 0)
    assert sched.workspace_bytes == 64
    assert kernel.bytes_written == 2 * 64
    assert [(w.what, w.buffer, w.nbytes) for w in sched.writebacks] == [("input 0", "new_x", 64)]


def test_mutation_written_in_place() -> None:
    # Every read of x is at the element new_x stores, and nothing after reads
    # x: new_x goes straight into x's memory and nothing is copied back.
    x = inp("x", [16])
    xl = x.make_loader()
    new_x = pointwise("new_x", [16], lambda ops, i: ops.add(xl(ops, i), ops.constant(1.0, F32)))
    nl = new_x.make_loader()
    out = pointwise("out", [16], lambda ops, i: ops.mul(nl(ops, i), nl(ops, i)))
    graph = make_graph([x], [new_x, out], [out])
    graph.input_mutations = [(0, new_x)]
    sched = schedule(graph)
    (kernel,) = sched.kernels
    assert where(sched, "new_x") == (Storage.INPUT, 0, 0)
    assert sched.workspace_bytes == 0 and sched.writebacks == []
    assert (kernel.bytes_read, kernel.bytes_written) == (64, 2 * 64)
    assert kernel.flops == 2 * 16  # the add and the mul


def test_shifted_read_blocks_in_place() -> None:
    # new_x[i] = x[i] + x[15 - i]: writing x[i] early would change what
    # another iteration reads.
    x = inp("x", [16])
    xl = x.make_loader()
    new_x = pointwise("new_x", [16], lambda ops, i: ops.add(xl(ops, i), xl(ops, [15 - i[0]])))
    graph = make_graph([x], [new_x], [])
    graph.input_mutations = [(0, new_x)]
    sched = schedule(graph)
    assert where(sched, "new_x")[0] == Storage.WORKSPACE
    assert len(sched.writebacks) == 1


def test_dead_buffer_is_local() -> None:
    x = inp("x", [16])
    xl = x.make_loader()
    dead = pointwise("dead", [16], lambda ops, i: ops.exp(xl(ops, i)))
    out = pointwise("out", [16], lambda ops, i: ops.neg(xl(ops, i)))
    sched = schedule(make_graph([x], [dead, out], [out]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.local == {"dead"} and sched.workspace_bytes == 0
    assert kernel.bytes_written == 64


def test_reading_an_unwritten_buffer_is_an_error() -> None:
    ghost = pointwise("out", [4], lambda ops, i: ops.load("nowhere", i[0]))
    with pytest.raises(ValueError, match="out reads nowhere"):
        schedule(make_graph([], [ghost], [ghost]))


# -- the load recorder -----------------------------------------------------------------
def test_recorder_implements_every_op() -> None:
    missing = [name for name in OP_NAMES if not callable(getattr(LoadRecorder, name, None))]
    assert missing == []


def test_recorder_sees_masked_and_indirect_loads() -> None:
    ids, table = inp("ids", [4], BufferKind.INPUT), inp("table", [100, 8], BufferKind.CONSTANT)
    il = ids.make_loader()
    tl = table.make_loader()

    def gather(ops: Any, i: Ix) -> Any:
        row = ops.indirect_indexing(il(ops, [i[0]]), 100, "ids")
        inside = ops.lt(ops.index_expr(i[1], torch.int64), ops.constant(8, torch.int64))
        return ops.masked(inside, lambda: tl(ops, [row, i[1]]), 0.0)

    out = pointwise("emb", [4, 8], gather)
    i0, i1 = index_vars(2)
    loads = record_loads(out.data, [i0, i1])
    assert [load.name for load in loads] == ["ids", "table"]
    assert loads[0].index == i0
    assert loads[1].index.free_symbols - {i1}  # an indirect symbol, not i0
    sched = schedule(make_graph([ids], [out], [out], constants=[table]))
    (kernel,) = sched.kernels
    assert isinstance(kernel, LoopKernel)
    assert kernel.bytes_read == 4 * 4 + 100 * 8 * 4  # a gather counts its whole table


def _gemm_then_row_max(of_product: bool) -> LoweredGraph:
    """[mm, q, y]: q = row max of relu(x), or of the product; y = product + q."""
    x, w = inp("x", [4, 4]), inp("w", [4, 4], BufferKind.CONSTANT)
    out = Buffer("mm0", F32, Layout.contiguous(_sizes([4, 4])))
    mm = ExternKernel("extern0", "mm", [x, w], [out])
    ol = out.make_loader()
    source = ol if of_product else x.make_loader()
    zero = lambda ops: ops.constant(0.0, F32)  # noqa: E731
    q = reduction(
        "q", [4], [4], "max", lambda ops, i, r: ops.maximum(source(ops, [i[0], r[0]]), zero(ops))
    )
    ql = expand(q, [4, 4]).make_loader()
    y = pointwise("y", [4, 4], lambda ops, i: ops.add(ol(ops, i), ql(ops, i)))
    return make_graph([x], [mm, q, y], [y], constants=[w])


def test_epilogue_hoists_what_it_needs() -> None:
    """q reads only x: it moves before the GEMM, and y becomes its epilogue."""
    kq, call = schedule(_gemm_then_row_max(of_product=False)).kernels
    assert isinstance(kq, LoopKernel) and [n.name for n in kq.nodes] == ["q"]
    assert isinstance(call, ExternCall) and call.epilogue is not None
    assert [n.name for n in call.epilogue.nodes] == ["y"]
    assert call.epilogue_shares == "y"


def test_epilogue_not_moved_past_its_inputs() -> None:
    """q reads the product, so it cannot run before the GEMM, nor y inside it."""
    call, kq, ky = schedule(_gemm_then_row_max(of_product=True)).kernels
    assert isinstance(call, ExternCall) and call.epilogue is None
    assert [n.name for n in kq.nodes] == ["q"] and [n.name for n in ky.nodes] == ["y"]


def test_merge_div_mod() -> None:
    """A view that splits a dim and one that merges it back: the index is
    the plain flat index again (what lets linear's [B*T, N] output feed an
    epilogue over [B, T, N]); pairs that do not recombine stay."""
    i0, i1 = index_vars(2)
    merged = merge_div_mod(i1 + 8192 * FloorDiv(i0, 32) + 256 * ModularIndexing(i0, 1, 32))
    assert sympy.expand(merged - (256 * i0 + i1)) == 0
    assert merge_div_mod(4 * FloorDiv(i0, 12) + ModularIndexing(i0, 3, 4)) == FloorDiv(i0, 3)
    kept = 3 * FloorDiv(i0, 12) + ModularIndexing(i0, 3, 4)
    assert merge_div_mod(kept) == kept


def test_epilogue_over_a_view_of_the_product() -> None:
    """gelu over linear's [8, 16] output viewed as [2, 4, 16]."""
    x, w = inp("x", [8, 8]), inp("w", [8, 16], BufferKind.CONSTANT)
    out = Buffer("mm0", F32, Layout.contiguous(_sizes([8, 16])))
    mm = ExternKernel("extern0", "mm", [x, w], [out])
    view = ReinterpretView(out, Layout(tuple(_sizes([2, 4, 16])), (64, 16, 1))).make_loader()
    y = pointwise("y", [2, 4, 16], lambda ops, i: ops.exp(view(ops, i)))
    (call,) = schedule(make_graph([x], [mm, y], [y], constants=[w])).kernels
    assert isinstance(call, ExternCall) and call.epilogue is not None
    assert call.epilogue_shares == "y"
