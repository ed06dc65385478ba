"""The scan family (cumsum, cumprod, logcumsumexp, cummax, cummin) end to end:
export, lowering to scan extern kernels (aot/lowering/scan.py), C++ emission
(aot/codegen/cpp/extern_scan.py, aotc_cpu_scan.h), build and the C++ runtime,
compared with eager. The kernels follow eager's CPU accumulation types
([Note: scan kernel numerics]), so results are compared bit for bit except
logcumsumexp (libm's exp/log1p, allowed a few ulp).
"""

from __future__ import annotations

import math

import pytest
import sympy
import torch
import torch.utils._pytree as pytree
from torch.export import Dim

from aot.codegen.cpp.extern_calls import emit_extern
from aot.ir.nodes import Buffer, BufferKind, Layout
from aot.lowering import scan
from aot.lowering.context import LoweringContext
from aot.testing import AOTCRunnerUtil

NAN = float("nan")


def _check(model: torch.nn.Module, args: tuple, loose: tuple[int, ...] = (), **kwargs) -> None:
    """Compiles and runs |model|; every output leaf must equal eager's (dtype,
    shape, NaN positions, values) exactly, or within a few ulp for the leaves
    numbered in |loose|."""
    model = model.eval()
    actual = AOTCRunnerUtil.run(model, args, **kwargs)
    with torch.no_grad():
        expected = model(*args)
    actual_leaves, expected_leaves = pytree.tree_leaves(actual), pytree.tree_leaves(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for k, (a, e) in enumerate(zip(actual_leaves, expected_leaves, strict=True)):
        assert a.dtype == e.dtype, f"output {k}: dtype {a.dtype}, eager {e.dtype}"
        tol = 4 * torch.finfo(e.dtype).eps if k in loose else 0.0
        torch.testing.assert_close(
            a, e, atol=tol, rtol=tol, equal_nan=True, msg=lambda m, k=k: f"output {k}: {m}"
        )


class Float32Scans(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        xt = x.transpose(0, 2)  # a non-contiguous view, read in place
        return (
            torch.cumsum(x, 0),
            torch.cumsum(x, -1),
            torch.cumsum(x, 1),
            torch.cumsum(xt, 1),
            torch.cumprod(1 + 0.5 * x, 1),  # an unrealized pointwise input
            torch.cumprod(x, -1),
            torch.logcumsumexp(x, 0),
            torch.logcumsumexp(xt, -1),
            torch.cummax(y, -1),
            torch.cummin(y, 0),
            torch.cummax(y.t(), 1),
            torch.cumsum(x, 2, dtype=torch.float64),
        )


def test_float32_each_op_and_dim(native_build):
    torch.manual_seed(0)
    # The inner dims are wider than the kernel's 64-line blocks.
    x = torch.randn(6, 5, 70)
    # Ties (equal values keep the later index) and NaNs (the latest NaN wins).
    y = torch.tensor(
        [
            [1.0, 3.0, 3.0, NAN, 5.0, NAN, 2.0],
            [1.0, 0.0, 0.0, -1.0, -1.0, 4.0, 4.0],
            [NAN, 2.0, 1.0, 7.0, 7.0, -2.0, -2.0],
            [-0.0, 0.0, -0.0, math.inf, -math.inf, math.inf, 1.0],
        ]
    )
    _check(Float32Scans(), (x, y), loose=(6, 7))


class Bfloat16Scans(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (
            torch.cumsum(x, -1),
            torch.cumsum(x, 0),
            torch.cumprod(x, 1),
            torch.logcumsumexp(x, -1),
            torch.cummax(x, 0),
            torch.cummin(x, 1),
            torch.cumsum(x, 1, dtype=torch.float32),  # bf16 -> float32, float32 sums in double
        )


def test_bfloat16_accumulates_in_float(native_build):
    """bf16 scans accumulate in float32 and round each output (eager's CPU
    acc_type); a long row shows the difference from bf16 accumulation."""
    torch.manual_seed(1)
    x = (torch.rand(4, 300) + 0.5).bfloat16()
    x[2, 10] = NAN
    _check(Bfloat16Scans(), (x,), loose=(3,))


class IntegerScans(torch.nn.Module):
    def forward(self, i: torch.Tensor, j: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> tuple:
        return (
            torch.cumsum(i, 0),
            torch.cumsum(i, -1),
            torch.cumprod(i, 1),  # wraps around like eager's int64
            torch.cumsum(j, 1),  # int32 -> int64
            torch.cumprod(j, 0),
            torch.cumsum(b, 0),  # bool -> int64
            torch.cummax(i, 1),
            torch.cummin(j.t(), 1),
            torch.cummax(b, 1),
            torch.cummin(b, 0),
            torch.cumsum(f, 1, dtype=torch.int32),  # float -> int32 before summing
            torch.cumprod(f.double(), 0),
        )


def test_integer_and_bool_inputs(native_build):
    torch.manual_seed(2)
    i = torch.randint(-50, 50, (5, 40), dtype=torch.int64)
    j = torch.randint(-3, 4, (5, 6), dtype=torch.int32)
    b = torch.rand(5, 6) > 0.5
    f = torch.randn(3, 7) * 4
    _check(IntegerScans(), (i, j, b, f))


class EdgeScans(torch.nn.Module):
    def forward(self, s: torch.Tensor, e: torch.Tensor) -> tuple:
        return (
            torch.cumsum(s, 0),
            torch.cumprod(s, -1),
            torch.logcumsumexp(s, 0),
            torch.cummax(s, -1),
            torch.cummin(s, 0),
            torch.cumsum(e, 1),
            torch.cumprod(e, 0),
            torch.logcumsumexp(e, -1),
            torch.cummax(e, 1),
            torch.cummin(e, 2),
        )


def test_zero_dim_and_empty_inputs(native_build):
    _check(EdgeScans(), (torch.tensor(-2.5), torch.randn(3, 0, 4)))


class DynamicScans(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        indices = torch.cummax(x.t(), 1)[1]  # the values are unused
        values = torch.cummin(x, 0)[0]  # the indices are unused
        return torch.cumsum(x, 0), indices, values, torch.logcumsumexp(x, 1)


def test_dynamic_scan_length_and_dead_outputs(native_build):
    """Symbolic sizes reach the kernel; only one of cummax's and cummin's two
    outputs is used (the scheduler still gives the other a buffer today; a
    missing one is passed as nullptr: test_emitted_call_for_a_zero_dim_input)."""
    model = DynamicScans().eval()
    inputs = [(torch.randn(5, 6),), (torch.randn(300, 6),), (torch.randn(2, 6),)]
    batch = Dim("batch", min=2, max=4096)
    outputs = AOTCRunnerUtil.run_multiple(model, inputs, dynamic_shapes=({0: batch},))
    for args, actual in zip(inputs, outputs, strict=True):
        expected = model(*args)
        for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
            tol = 1e-6 if k == 3 else 0.0
            torch.testing.assert_close(a, e, atol=tol, rtol=tol)


# -- lowering and emission without a build -----------------------------------------


def _input(sizes: list[int], dtype: torch.dtype) -> Buffer:
    layout = Layout.contiguous([sympy.Integer(s) for s in sizes])
    return Buffer("x", dtype, layout, BufferKind.INPUT)


def test_lowering_dtypes_and_dims():
    ctx = LoweringContext()
    out = scan.lower_cumsum(ctx, _input([2, 3], torch.int32), -1)
    assert out.dtype == torch.int64 and ctx.nodes[-1].params == {"dim": 1}
    out = scan.lower_cumprod(ctx, _input([2, 3], torch.bool), 0, dtype=torch.float32)
    assert out.dtype == torch.float32
    values, indices = scan.lower_cummax(ctx, _input([], torch.bfloat16), -1)
    assert (values.dtype, indices.dtype) == (torch.bfloat16, torch.int64)
    assert ctx.nodes[-1].params == {"dim": 0}
    with pytest.raises(NotImplementedError, match="float16"):
        scan.lower_cumsum(ctx, _input([4], torch.float16), 0)
    with pytest.raises(NotImplementedError, match="logcumsumexp"):
        scan.lower_logcumsumexp(ctx, _input([4], torch.int64), 0)
    with pytest.raises(IndexError):
        scan.lower_cummin(ctx, _input([2, 3], torch.float32), 2)


def test_emitted_call_for_a_zero_dim_input():
    ctx = LoweringContext()
    scan.lower_cummin(ctx, _input([], torch.float32), 0)
    node = ctx.nodes[-1]
    ids = {"x": 0, node.outputs[0].name: 1}  # the indices are unused
    source = emit_extern("extern0", node, ids, str)
    assert "const int64_t sizes[] = {1};" in source
    assert "int64_t* indices = nullptr;" in source
    assert "kn::cummin<T>(ctx, shape, x, values, indices)" in source
