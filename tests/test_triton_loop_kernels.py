"""Triton loop kernels (aot/codegen/triton/loop_kernel.py, ops_printer.py):
small modules exported for cuda and run through Triton's interpreter
(tests/triton_interp.py) against eager, then every generated kernel compiled
offline for sm_90 (the last test), so a Triton compile error fails CI."""

from __future__ import annotations

import os
from typing import Any

import pytest
import sympy
import torch
import torch.nn.functional as F
from triton_interp import InterpretedIndexError, compile_and_interpret, load_kernel

from aot.codegen.triton.context import TritonContext
from aot.codegen.triton.launch import TritonKernel
from aot.codegen.triton.loop_kernel import generate_epilogue
from aot.codegen.triton.ops_printer import TritonIndexPrinter, TritonOpsHandler, index_bound
from aot.ir.ops import OP_NAMES
from aot.ir.symbols import FloorDiv, ModularIndexing, index_vars
from aot.scheduler.schedule import ExternCall, LoopKernel

# Masked-off lanes divide by zero in the interpreter's numpy (harmless).
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in divide:RuntimeWarning")

# Every kernel the tests generate, compiled together at the end.
_GENERATED: list[TritonKernel] = []


class _Fn(torch.nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def _check(
    fn: Any, *inputs: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5, **kwargs: Any
) -> list[list[TritonKernel]]:
    outs, _, launches = compile_and_interpret(_Fn(fn).eval(), inputs, **kwargs)
    expected = fn(*inputs)
    expected = list(expected) if isinstance(expected, tuple | list) else [expected]
    assert len(outs) == len(expected)
    for out, ref in zip(outs, expected, strict=True):
        torch.testing.assert_close(out, ref, atol=atol, rtol=rtol, equal_nan=True)
    for kernels in launches:
        _GENERATED.extend(kernels)
    return launches


def _sources(launches: list[list[TritonKernel]]) -> str:
    return "\n".join(k.source for kernels in launches for k in kernels)


# ---------------------------------------------------------------------------
# Printer
# ---------------------------------------------------------------------------


def test_ops_handler_is_complete() -> None:
    missing = [name for name in OP_NAMES if not callable(getattr(TritonOpsHandler, name, None))]
    assert missing == []


def test_index_printer_and_bounds() -> None:
    i0, i1 = index_vars(2)
    s0 = sympy.Symbol("s0", integer=True, positive=True)
    printer = TritonIndexPrinter(lambda s: s.name)
    assert printer(FloorDiv(i0, 4)) == "(i0 // 4)"
    assert printer(ModularIndexing(i0 + 64 * i1, 4, 8)) == "((i0 + 64 * i1) // 4 % 8)" or "%" in (
        printer(ModularIndexing(i0 + 64 * i1, 4, 8))
    )
    assert printer(3 - i0) == "-i0 + 3" or printer(3 - i0).endswith("+ 3")
    assert index_bound(i0 * 1000 + i1, {i0: 10, i1: 1000}) == 9999
    assert index_bound(i0 * s0, {i0: 10}) is None


# ---------------------------------------------------------------------------
# Pointwise
# ---------------------------------------------------------------------------


def test_unary_and_binary_with_broadcast() -> None:
    x, y = torch.randn(4, 33), torch.randn(33)

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = torch.sigmoid(x) * torch.tanh(y) + torch.erf(x) - torch.exp(y) / (x.abs() + 1)
        b = torch.sqrt(x.abs()) + torch.rsqrt(y.abs() + 1) + torch.log1p(x.abs()) + x.expm1()
        c = torch.atan2(x, y) + torch.pow(x.abs(), y) + torch.floor(x * 3) + torch.round(x * 4)
        d = torch.maximum(x, y) + torch.minimum(x, y * 2) + torch.sin(x) * torch.cos(y)
        e = torch.where(x > y, x, y) + torch.sign(x) + torch.trunc(x * 5) + torch.ceil(y * 2)
        return a, b, c, d, e, F.gelu(x), torch.nan_to_num(x / (y - y))

    _check(fn, x, y)


def test_nan_propagating_max_min() -> None:
    x = torch.randn(64)
    x[::7] = float("nan")
    y = torch.randn(64)
    _check(lambda x, y: (torch.maximum(x, y), torch.minimum(y, x), x.clamp(-0.5, 0.5)), x, y)


def test_views_slices_cat() -> None:
    x, y = torch.randn(3, 4, 5), torch.randn(5, 4)

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = x.permute(2, 0, 1) * 2
        s = x[:, 1:3, ::2] + 1
        c = torch.cat([x.reshape(12, 5), y.t()], 0) - 1
        return p.contiguous(), s, c, x.flip(-1) + y.t().unsqueeze(0)[:, :, :]

    _check(fn, x, y)


def test_masked_pad() -> None:
    x = torch.randn(2, 3, 5)
    _check(lambda x: (F.pad(x, (2, 1, 1, 0), value=-1.5) * 3,), x)


def test_int_and_bool_ops() -> None:
    a = torch.randint(-50, 50, (40,), dtype=torch.int32)
    b = torch.randint(1, 9, (40,), dtype=torch.int32) * torch.where(
        torch.arange(40) % 2 == 0, 1, -1
    ).to(torch.int32)
    c = torch.randint(-128, 127, (40,), dtype=torch.int8)

    def fn(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            torch.div(a, b, rounding_mode="floor"),
            torch.remainder(a, b),
            a & b,
            a | b,
            a ^ b,
            ~a,
            c * c + c,
            (a > b) & ~(a == 3) | (b < 0),
            torch.logical_xor(a > 0, b > 0),
            (a > 0).sum(),
            a.abs() * b.neg(),
            (a.float() * 0.37).to(torch.int32),
            torch.div(a, b, rounding_mode="trunc"),
        )

    _check(fn, a, b, c)


def test_float_floordiv_and_remainder() -> None:
    a, b = torch.randn(50) * 10, torch.randn(50) * 3
    _check(lambda a, b: (torch.remainder(a, b), torch.div(a, b, rounding_mode="floor")), a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types(dtype: torch.dtype) -> None:
    x, y = torch.randn(8, 40).to(dtype), torch.randn(40).to(dtype)
    tol = 1e-2 if dtype == torch.float16 else 2e-2

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return F.gelu(x + y) * 2, x.sum(-1), x.softmax(-1), x.amax(0)

    _check(fn, x, y, atol=tol, rtol=tol)


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


def test_reductions_last_and_other_dims() -> None:
    x = torch.randn(6, 7, 10)

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            x.sum(-1),
            x.mean(1),
            x.amax(0),
            x.amin(-1),
            x.argmax(-1),
            x.argmin(1),
            (x * 0.3 + 1).prod(-1),
            (x > 0).any(-1),
            (x > -2).all(0),
            x.sum(),
        )

    _check(fn, x, atol=1e-4, rtol=1e-4)


def test_argmax_ties_and_nan() -> None:
    x = torch.randint(0, 3, (5, 9)).float()
    x[2, 4] = float("nan")
    x[2, 6] = float("nan")
    _check(lambda x: (x.argmax(-1), x.argmin(-1), x.amax(-1)), x)


def test_welford_var_std() -> None:
    x = torch.randn(5, 12) + 100

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.var(-1), x.std(0), torch.var_mean(x, -1, correction=0)[0]

    _check(fn, x, atol=1e-4, rtol=1e-4)


def test_norms_and_softmax() -> None:
    x = torch.randn(4, 3, 32)
    w, b = torch.randn(32), torch.randn(32)

    def fn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            x.softmax(-1),
            x.log_softmax(1),
            F.layer_norm(x, (32,), w, b),
            F.rms_norm(x, (32,), w, eps=1e-6),
        )

    _check(fn, x, w, b, atol=1e-5, rtol=1e-4)


def test_looped_reductions() -> None:
    x = torch.randn(3, 5000)
    y = torch.randn(300, 6)

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.sum(-1), x.var(-1), x.argmax(-1), x.softmax(-1), x.amax(-1), y.sum(0), y.std(0)

    launches = _check(fn, x, y, atol=1e-4, rtol=1e-4)
    assert "for roffset in range(0, rnumel, RBLOCK):" in _sources(launches)


# ---------------------------------------------------------------------------
# Indirect indexing, dynamic shapes
# ---------------------------------------------------------------------------


def test_embedding_and_out_of_range_index() -> None:
    weight = torch.randn(10, 4)
    idx = torch.tensor([[1, 9], [0, 3]])
    launches = _check(lambda w, i: F.embedding(i, w) * 2, weight, idx)
    assert any(k.index_checks for kernels in launches for k in kernels)
    bad = torch.tensor([[1, 10], [0, 3]])
    with pytest.raises(InterpretedIndexError, match=r"index 10 out of range \[0, 10\)"):
        compile_and_interpret(_Fn(lambda w, i: F.embedding(i, w) * 2).eval(), (weight, bad))


class _Dynamic(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.softmax(-1), torch.relu(x) + 1, x.sum(0)


def test_dynamic_batch() -> None:
    x = torch.randn(5, 16)
    batch = torch.export.Dim("batch", min=2, max=64)
    outs, _, launches = compile_and_interpret(_Dynamic().eval(), (x,), dynamic_shapes=({0: batch},))
    for out, ref in zip(outs, _Dynamic()(x), strict=True):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    kernels = [k for ks in launches for k in ks]
    assert any(a.kind == "size" for k in kernels for a in k.args)
    _GENERATED.extend(kernels)


# ---------------------------------------------------------------------------
# Epilogue
# ---------------------------------------------------------------------------

_TEMPLATE = """
import triton
import triton.language as tl
{helpers}

@triton.jit
def tiny_template(prod_ptr, {epi_params}M: tl.constexpr, N: tl.constexpr, BM: tl.constexpr,
                  BN: tl.constexpr):
    # A tile of the product (computed by the test), then the epilogue.
    rm = tl.program_id(0) * BM + tl.arange(0, BM)[:, None]
    rn = tl.arange(0, BN)[None, :]
    mask = (rm < M) & (rn < N)
    index = rm * N + rn
    acc = tl.load(prod_ptr + index, mask, other=0.0).to(tl.float32)
{body}
"""


def test_generate_epilogue_in_a_hand_written_template() -> None:
    from aot.codegen.cpp.kernel import graph_buffer_dtypes
    from aot.export import lower
    from aot.frontend import capture_module
    from aot.options import ExportOptions
    from aot.scheduler import schedule as make_schedule
    from aot.scheduler.schedule import Storage

    x, w, r = torch.randn(6, 5), torch.randn(5, 7), torch.randn(6, 7)

    def fn(x: torch.Tensor, w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ w + r).sin() * 2

    options = ExportOptions(device="cuda", arch="sm_90")
    exported = capture_module(_Fn(fn).eval(), (x, w, r), options, name="model")
    graph = lower(exported)
    plan = make_schedule(graph)
    calls = [k for k in plan.kernels if isinstance(k, ExternCall) and k.epilogue is not None]
    assert calls, "the schedule fused no epilogue"
    call = calls[0]
    assert isinstance(call.epilogue, LoopKernel)
    ctx = TritonContext(graph_buffer_dtypes(graph), [s.symbol for s in graph.symbols])
    product = call.node.outputs[0].name
    epilogue = generate_epilogue(call.epilogue, product, ctx, call.epilogue_shares is not None)
    assert all(a.name.startswith("epi_") for a in epilogue.args)
    body = epilogue.body("index", "acc", "mask")
    source = _TEMPLATE.format(
        helpers=epilogue.helpers,
        epi_params="".join(f"{a.name}, " for a in epilogue.args),
        body="\n".join("    " + line for line in body),
    )
    kernel = TritonKernel(
        name="tiny_template",
        source=source,
        args=[],
        grid=(sympy.Integer(1), sympy.Integer(1), sympy.Integer(1)),
        constexprs={"M": 6, "N": 7, "BM": 8, "BN": 8},
    )
    inputs = {b.name: t for b, t in zip(graph.inputs, (x, w, r), strict=True)}
    out = torch.empty(6, 7)
    args = []
    for arg in epilogue.args:
        placement = plan.placements[arg.buffer]
        if placement.storage is Storage.OUTPUT:
            args.append(out.view(-1))
        else:
            args.append(inputs[arg.buffer].reshape(-1))
    fn_jit = load_kernel(kernel)
    fn_jit[(1,)](x @ w, *args, **kernel.constexprs)
    torch.testing.assert_close(out, fn(x, w, r), atol=1e-5, rtol=1e-5)
    kernel.args = []  # compiled below with its epilogue args as pointers
    from aot.codegen.triton.launch import TritonArg

    kernel.args = [
        TritonArg("prod_ptr", "pointer", buffer=product, dtype=torch.float32),
        *epilogue.args,
    ]
    _GENERATED.append(kernel)


# ---------------------------------------------------------------------------
# Offline compile of everything above
# ---------------------------------------------------------------------------


def test_generated_kernels_compile_for_sm90() -> None:
    from aot.build.triton_build import compile_kernels

    if not _GENERATED:
        pytest.skip("no kernels generated (run with the other tests)")
    kernels = list({k.name + k.source: k for k in _GENERATED}.values())
    # Names repeat across test modules (kernel0 ...): compile each under a unique one.
    renamed = []
    for n, k in enumerate(kernels):
        name = f"{k.name}_t{n}"
        source = k.source.replace(f"def {k.name}(", f"def {name}(")
        renamed.append(
            TritonKernel(
                name=name,
                source=source,
                args=k.args,
                grid=k.grid,
                constexprs=k.constexprs,
                num_warps=k.num_warps,
                num_stages=k.num_stages,
            )
        )
    env = os.environ.pop("TRITON_INTERPRET", None)
    try:
        compiled = compile_kernels(renamed, "sm_90")
    finally:
        if env is not None:
            os.environ["TRITON_INTERPRET"] = env
    assert len(compiled) == 2 * len(renamed)


def test_float_erf_is_the_cpu_formula():
    """[Note: GPU erf]: within 6e-7 of torch.erf, NaN, +-inf and -0 kept."""

    class Erf(torch.nn.Module):
        def forward(self, x):
            return torch.erf(x), F.gelu(x)

    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])
    x = torch.cat([torch.linspace(-6, 6, 2001), special])
    (erf, gelu), _, _ = compile_and_interpret(Erf().eval(), (x,))
    torch.testing.assert_close(erf, torch.erf(x), atol=6e-7, rtol=0, equal_nan=True)
    finite = x.isfinite()
    torch.testing.assert_close(gelu[finite], F.gelu(x)[finite], atol=2e-6, rtol=0)
    assert torch.equal(erf[-5:].signbit(), torch.erf(special).signbit())
