"""Core op coverage through the real runtime: empty tensors, int32 and
boolean-mask indices, embedding's max_norm and batch norm in training mode.

Each test compiles one model grouping many cases (a compile per case would
cost a build each), runs it through the C++ runtime (AOTCRunnerUtil) on the
example inputs and on a fresh random set of the same shapes, and compares
with eager. Models that mutate their inputs (embedding_renorm_, running
statistics) return clones of the mutated tensors, so the comparison sees
the new values; eager and the package each get their own copies.
"""

from __future__ import annotations

import sympy
import torch
import torch.nn.functional as F
from two_trials import check

from aot.codegen.cpp.kernel import generate_loop_kernel
from aot.ir.nodes import Buffer, BufferKind, ComputedBuffer, Layout, Pointwise, Reduction
from aot.ir.symbols import FloorDiv, ModularIndexing
from aot.scheduler.schedule import LoopKernel

aten = torch.ops.aten


def randn(*shape: int, g: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(dtype)


def randint(high: int, *shape: int, g: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randint(high, shape, generator=g).to(dtype)


# ------------------------------------------------------------- empty tensors


def _empty_cases(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """x: [3, 0, 4], y: [0], z: [2, 3]; bf16 variants of a few at the end."""
    t = x.transpose(1, 2) * 3
    return (
        # pointwise and views
        x * 2 + 1,
        torch.exp(x).reshape(3, -1),
        t.reshape(12, 0) + 1,
        x.permute(2, 0, 1) - 1,
        # reductions: over the empty dim the identity (or NaN) fills a
        # non-empty result; over the others the result is empty
        x.sum(1),
        x.prod(1),
        x.mean(1),
        x.var(1, correction=0),
        x.amax(2),
        x.sum(dim=(0, 2)),
        y.sum(),
        y.bool().any(),
        y.bool().all(),
        z.sum(1, keepdim=True) + y.sum(),
        # softmax family
        x.softmax(1),
        F.log_softmax(x, -1),
        t.softmax(1),
        # cat / stack / flips and other copies
        torch.cat([x, x], 1),
        torch.cat([z, y.view(0, 3)]),
        torch.stack([x, x]),
        x.flip(1),
        torch.fliplr(x),
        torch.roll(x, 1, 2),
        z.repeat(0, 2),
        x.narrow(2, 1, 2) * 2,
        torch.diff(x, dim=1),
        # bfloat16
        x.to(torch.bfloat16).sum(1),
        x.to(torch.bfloat16).softmax(1),
    )


def _buffer(name: str, sizes: list[int], data: Pointwise | Reduction | None = None) -> Buffer:
    layout = Layout.contiguous([sympy.Integer(n) for n in sizes])
    if data is None:
        return Buffer(name, torch.float32, layout, BufferKind.INPUT)
    return ComputedBuffer(name, torch.float32, layout, data=data)


def _kernel_source(kernel: LoopKernel) -> str:
    ids = {"x": 0, "out": 1}
    return generate_loop_kernel(kernel, ids, str, "k:0", {"x": torch.float32})


def test_zero_divisors_in_index_math() -> None:
    # Strides past a size-0 dim are 0; no iteration evaluates them.
    i = sympy.Symbol("i0", integer=True, nonnegative=True)
    assert FloorDiv(i, 0) == 0 and ModularIndexing(i, 0, 4) == 0
    assert ModularIndexing(i, 4, 0) == 0 and FloorDiv(3 * i + 1, 0) == 0


def test_empty_outer_kernel_has_no_body() -> None:
    x = _buffer("x", [5, 0, 3])
    load = x.make_loader()
    out = _buffer("out", [5, 0, 3], Pointwise([5, 0, 3], torch.float32, load))
    source = _kernel_source(LoopKernel("k", [out], list(out.data.ranges)))
    assert "// empty" in source and "parallel_for" not in source


def test_reduction_over_empty_range_stores_identity() -> None:
    x = _buffer("x", [4, 0])
    load = x.make_loader()
    body = Reduction(
        [sympy.Integer(4)],
        torch.float32,
        [sympy.Integer(0)],
        "prod",
        lambda o, i, r: load(o, [*i, *r]),
    )
    out = _buffer("out", [4], body)
    source = _kernel_source(LoopKernel("k", [out], [sympy.Integer(4)], [sympy.Integer(0)]))
    assert "parallel_for(ctx, 0, 4," in source and "= 1.0f;" in source


def test_empty_tensors(native_build):
    check(
        _empty_cases,
        lambda g: (randn(3, 0, 4, g=g), randn(0, g=g), randn(2, 3, g=g)),
    )


# ---------------------------------------------------------------- int32 indices


def _int32_cases(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, w: torch.Tensor) -> tuple:
    """x: [6, 5]; i: int32 [4, 5] in [0, 6); j: int32 [4] in [0, 5); w [6, 5]."""
    s = x.sum()
    return (
        torch.gather(x, 0, i),
        torch.index_select(x, 1, j),
        F.embedding(j, w),
        x[j],
        x[:, j],
        torch.scatter(x, 0, i, x[:4] * 2),
        torch.scatter_add(x, 0, i, x[:4]),
        torch.scatter(x, 0, i, x[:4], reduce="multiply"),
        torch.index_put(x, (j,), x[0] * 3, accumulate=True),
        # 0-d inputs: gather reads them as 1-d, index_select gives 0-d
        torch.gather(s, 0, j[:1].long() * 0),
        torch.index_select(s, 0, j[:1] * 0),
    )


def test_int32_indices(native_build):
    check(
        _int32_cases,
        lambda g: (
            randn(6, 5, g=g),
            randint(6, 4, 5, g=g, dtype=torch.int32),
            randint(5, 4, g=g, dtype=torch.int32),
            randn(6, 5, g=g),
        ),
    )


# ----------------------------------------------------------- boolean-mask index_put


def _mask_cases(
    x: torch.Tensor, m: torch.Tensor, grid: torch.Tensor, v: torch.Tensor, rows: torch.Tensor
) -> tuple:
    """x: [5, 5]; m: bool [5] with 3 set; grid: bool [5, 5]; v: [5]; rows: [3, 5]."""

    def columns(values: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, m] = values
        return out

    return (
        torch.index_put(x, (m,), v),  # values broadcast over the selected rows
        torch.index_put(x, (m,), v, accumulate=True),
        torch.index_put(x, (m,), rows),  # the n-th selected row takes rows[n]
        torch.index_put(x, (m,), rows, accumulate=True),
        torch.index_put(x, (grid,), torch.tensor(2.0)),
        torch.index_put(x, (m.to(torch.uint8),), v),
        columns(rows.t()),
        torch.index_put(x.to(torch.bfloat16), (grid,), v.to(torch.bfloat16)[:1], accumulate=True),
    )


def _three_of_five(g: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(5, dtype=torch.bool)
    mask[torch.randperm(5, generator=g)[:3]] = True
    return mask


def test_boolean_mask_index_put(native_build):
    check(
        _mask_cases,
        lambda g: (
            randn(5, 5, g=g),
            _three_of_five(g),
            randn(5, 5, g=g) > 0,
            randn(5, g=g),
            randn(3, 5, g=g),
        ),
    )


# --------------------------------------------------------------- embedding max_norm


def _max_norm_cases(w: torch.Tensor, w1: torch.Tensor, i: torch.Tensor, wb: torch.Tensor) -> tuple:
    """Rows of w named by i are renormed in place (an input mutation)."""
    out2 = F.embedding(i, w, max_norm=1.5)
    out1 = F.embedding(i[:, :2], w1, max_norm=2.0, norm_type=1.0, padding_idx=0)
    outb = F.embedding(i, wb, max_norm=1.0)
    return out2, w.clone(), out1, w1.clone(), outb, wb.clone()


def test_embedding_max_norm(native_build):
    check(
        _max_norm_cases,
        lambda g: (
            randn(10, 4, g=g),
            randn(10, 4, g=g),
            randint(10, 3, 4, g=g, dtype=torch.int64),
            randn(10, 4, g=g, dtype=torch.bfloat16),
        ),
    )


# ---------------------------------------------------------- batch norm, training


def _batch_norm_cases(
    x: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple:
    """Training-mode batch norm updates rm/rv in place; the clones after each
    call show the new running statistics."""
    out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3)
    stats = (rm.clone(), rv.clone())
    y = x[:, :, :1] * 2
    native = torch.native_batch_norm(y, w, b, rm, rv, True, 0.1, 1e-5)
    after = (rm.clone(), rv.clone())
    update = aten._batch_norm_with_update(x, w, b, rm, rv, 0.5, 1e-5)
    xb, rmb, rvb = x.to(torch.bfloat16), rm.to(torch.bfloat16), rv.to(torch.bfloat16)
    outb = F.batch_norm(xb, rmb, rvb, None, None, training=True, momentum=0.2)
    return out, *stats, *native, *after, *update[:3], rm, rv, outb, rmb, rvb


def test_batch_norm_training_stats(native_build):
    check(
        _batch_norm_cases,
        lambda g: (
            randn(4, 3, 5, g=g) * 2 + 1,
            randn(3, g=g),
            randn(3, g=g).abs() + 0.5,
            randn(3, g=g),
            randn(3, g=g),
        ),
    )
