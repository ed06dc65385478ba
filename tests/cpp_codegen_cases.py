"""Hand-built LoopKernels for tests/test_cpp_codegen.py: each Case has a
kernel, its input tensors and the outputs torch computes for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy
import torch

from aot.ir.nodes import (
    Buffer,
    BufferKind,
    ComputedBuffer,
    Layout,
    Pointwise,
    Reduction,
    WelfordReduction,
)
from aot.ir.symbols import size_symbol
from aot.scheduler.schedule import LoopKernel

I = sympy.Integer  # noqa: E741
S0 = size_symbol("s0")
S1 = size_symbol("s1")
# ---------------------------------------------------------------------------
# IR construction helpers
# ---------------------------------------------------------------------------


def sizes(*dims: int | sympy.Expr) -> list[sympy.Expr]:
    return [sympy.sympify(d) for d in dims]


def input_buffer(name: str, dtype: torch.dtype, *dims: int | sympy.Expr) -> Buffer:
    return Buffer(name, dtype, Layout.contiguous(sizes(*dims)), BufferKind.INPUT)


def pointwise(name: str, dtype: torch.dtype, ranges: list, fn: Callable) -> ComputedBuffer:
    data = Pointwise(list(ranges), dtype, fn)
    return ComputedBuffer(
        name, dtype, Layout.contiguous(ranges), origins=(f"fx_{name}",), data=data
    )


def reduction(
    name: str,
    dtype: torch.dtype,
    ranges: list,
    reduction_ranges: list,
    kind: str,
    fn: Callable,
    src_dtype: torch.dtype = torch.float32,
) -> ComputedBuffer:
    data = Reduction(list(ranges), dtype, list(reduction_ranges), kind, fn, src_dtype)
    return ComputedBuffer(
        name, dtype, Layout.contiguous(ranges), origins=(f"fx_{name}",), data=data
    )


def welford(
    name: str, dtype: torch.dtype, ranges: list, reduction_ranges: list, fn: Callable
) -> tuple[ComputedBuffer, ComputedBuffer]:
    """The (mean, m2) buffers of one Welford reduction, named name_mean and
    name_m2 ([Note: multi-output reductions])."""
    out = []
    for k, part in enumerate(("mean", "m2")):
        data = WelfordReduction(
            list(ranges), dtype, list(reduction_ranges), "welford", fn, dtype, k, f"{name}_mean"
        )
        out.append(
            ComputedBuffer(
                f"{name}_{part}",
                dtype,
                Layout.contiguous(ranges),
                origins=(f"fx_{name}",),
                data=data,
            )
        )
    return out[0], out[1]


def size_expr(symbol: sympy.Expr) -> str:
    return {S0: "ctx.sym[0]", S1: "ctx.sym[1]"}[symbol]


# ---------------------------------------------------------------------------
# Compiled cases
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """One kernel with its input arrays and the outputs it must produce."""

    name: str
    kernel: LoopKernel
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]  # expected values (dtype and shape of the buffer)
    syms: list[int] = field(default_factory=list)
    expect_rc: int = 0
    expect_message: list[str] = field(default_factory=list)
    check: Callable[[dict[str, torch.Tensor]], None] | None = None  # instead of equality
    atol: float | None = None
    rtol: float | None = None


CASES: list[Case] = []


def case(fn: Callable[[], Case | list[Case]]) -> Callable[[], Case | list[Case]]:
    made = fn()
    CASES.extend(made if isinstance(made, list) else [made])
    return fn


def _loader(buffer: Buffer) -> Callable:
    return buffer.make_loader()


@case
def pointwise_chain() -> Case:
    # out = maximum(sigmoid(x * y + 1.5), 0.25) with y broadcast over rows;
    # NaN must survive maximum; also an int cast of x (truncation, NaN -> INT_MIN).
    x = input_buffer("x", torch.float32, 5, 37)
    y = input_buffer("y", torch.float32, 37)
    lx, ly = _loader(x), _loader(y)

    def body(ops, i):
        v = ops.add(ops.mul(lx(ops, i), ly(ops, [i[1]])), ops.constant(1.5, torch.float32))
        return ops.maximum(ops.sigmoid(v), ops.constant(0.25, torch.float32))

    out = pointwise("out", torch.float32, sizes(5, 37), body)
    as_int = pointwise(
        "as_int", torch.int32, sizes(5, 37), lambda ops, i: ops.to_dtype(lx(ops, i), torch.int32)
    )
    xv = torch.randn(5, 37) * 4
    xv[1, 3] = float("nan")
    xv[2, 4] = 3e9
    yv = torch.randn(37)
    expected = torch.maximum(torch.sigmoid(xv * yv + 1.5), torch.tensor(0.25))
    kernel = LoopKernel("k_pointwise_chain", [out, as_int], sizes(5, 37))
    return Case(
        "pointwise_chain",
        kernel,
        {"x": xv, "y": yv},
        {"out": expected, "as_int": xv.to(torch.int32)},
    )


@case
def dynamic_pointwise() -> Case:
    # 3-D, first dim dynamic (s0 = 7): out = x + (i0 * 15 + i1 * 5 + i2) as float
    x = input_buffer("x", torch.float32, S0, 3, 5)
    lx = _loader(x)

    def body(ops, i):
        flat = ops.index_expr(i[0] * 15 + i[1] * 5 + i[2], torch.float32)
        return ops.add(lx(ops, i), flat)

    out = pointwise("out", torch.float32, [S0, I(3), I(5)], body)
    xv = torch.randn(7, 3, 5)
    expected = xv + torch.arange(105, dtype=torch.float32).reshape(7, 3, 5)
    kernel = LoopKernel("k_dynamic_pointwise", [out], [S0, I(3), I(5)])
    return Case("dynamic_pointwise", kernel, {"x": xv}, {"out": expected}, syms=[7])


@case
def bf16_fp16() -> Case:
    # bf16 in, float compute, bf16 and fp16 out (round to nearest even);
    # special values and every conversion path.
    x = input_buffer("x", torch.bfloat16, 300)
    f = input_buffer("f", torch.float32, 300)
    lx, lf = _loader(x), _loader(f)

    def body(ops, i):
        v = ops.to_dtype(lx(ops, i), torch.float32)
        return ops.to_dtype(ops.mul(v, ops.constant(2.5, torch.float32)), torch.bfloat16)

    scaled = pointwise("scaled", torch.bfloat16, sizes(300), body)
    to_bf16 = pointwise(
        "to_bf16",
        torch.bfloat16,
        sizes(300),
        lambda ops, i: ops.to_dtype(lf(ops, i), torch.bfloat16),
    )
    to_fp16 = pointwise(
        "to_fp16", torch.float16, sizes(300), lambda ops, i: ops.to_dtype(lf(ops, i), torch.float16)
    )
    # Stored without an explicit downcast: the store converts.
    implicit = pointwise(
        "implicit",
        torch.float16,
        sizes(300),
        lambda ops, i: ops.mul(lf(ops, i), ops.constant(0.5, torch.float32)),
    )
    specials = [
        float("nan"),
        float("inf"),
        float("-inf"),
        0.0,
        -0.0,
        1e-40,
        -1e-45,
        65504.0,
        65520.0,
        1e6,
        6e-8,
        3e-5,
    ]
    fv = torch.cat([torch.tensor(specials), torch.randn(300 - len(specials)) * 100])
    # Exact bf16 ties: 1 + 2^-8 rounds to 1, 1 + 3 * 2^-8 rounds up.
    fv[20], fv[21] = 1 + 2**-8, 1 + 3 * 2**-8
    xv = (torch.randn(300) * 10).to(torch.bfloat16)
    xv[0] = float("nan")
    expected = {
        "scaled": (xv.float() * 2.5).to(torch.bfloat16),
        "to_bf16": fv.to(torch.bfloat16),
        "to_fp16": fv.to(torch.float16),
        "implicit": (fv * 0.5).to(torch.float16),
    }
    kernel = LoopKernel("k_bf16_fp16", [scaled, to_bf16, to_fp16, implicit], sizes(300))
    return Case("bf16_fp16", kernel, {"x": xv, "f": fv}, expected)


@case
def reduced_all_patterns() -> Case:
    # Every bf16 and fp16 bit pattern to float32, and back.
    b = input_buffer("b", torch.bfloat16, 65536)
    h = input_buffer("h", torch.float16, 65536)
    lb, lh = _loader(b), _loader(h)
    b32 = pointwise(
        "b32", torch.float32, sizes(65536), lambda ops, i: ops.to_dtype(lb(ops, i), torch.float32)
    )
    h32 = pointwise(
        "h32", torch.float32, sizes(65536), lambda ops, i: ops.to_dtype(lh(ops, i), torch.float32)
    )
    h16 = pointwise(
        "h16",
        torch.float16,
        sizes(65536),
        lambda ops, i: ops.to_dtype(ops.to_dtype(lh(ops, i), torch.float32), torch.float16),
    )
    # And 65536 random float32 bit patterns (NaN payloads, subnormals, ...) down.
    f = input_buffer("f", torch.float32, 65536)
    lf = _loader(f)
    f_bf16 = pointwise(
        "f_bf16",
        torch.bfloat16,
        sizes(65536),
        lambda ops, i: ops.to_dtype(lf(ops, i), torch.bfloat16),
    )
    f_fp16 = pointwise(
        "f_fp16",
        torch.float16,
        sizes(65536),
        lambda ops, i: ops.to_dtype(lf(ops, i), torch.float16),
    )
    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    bv, hv = bits.view(torch.bfloat16), bits.view(torch.float16)
    generator = torch.Generator().manual_seed(0)
    fv = torch.randint(-(2**31), 2**31 - 1, (65536,), dtype=torch.int32, generator=generator)
    fv = fv.view(torch.float32)
    nodes = [b32, h32, h16, f_bf16, f_fp16]
    kernel = LoopKernel("k_reduced_all_patterns", nodes, sizes(65536))
    expected = {
        "b32": bv.float(),
        "h32": hv.float(),
        "h16": hv,
        "f_bf16": fv.to(torch.bfloat16),
        "f_fp16": fv.to(torch.float16),
    }
    inputs = {"b": bv, "h": hv, "f": fv}
    return Case("reduced_all_patterns", kernel, inputs, expected, atol=0.0, rtol=0.0)


@case
def integer_division() -> list[Case]:
    cases = []
    for dtype in (torch.int64, torch.int32, torch.int8):
        a = input_buffer("a", dtype, 12)
        b = input_buffer("b", dtype, 12)
        la, lb = _loader(a), _loader(b)
        fdiv = pointwise(
            "fdiv",
            dtype,
            sizes(12),
            lambda ops, i, la=la, lb=lb: ops.floordiv(la(ops, i), lb(ops, i)),
        )
        fmod = pointwise(
            "fmod", dtype, sizes(12), lambda ops, i, la=la, lb=lb: ops.mod(la(ops, i), lb(ops, i))
        )
        low = torch.iinfo(dtype).min
        av = torch.tensor([7, -7, 7, -7, 0, 5, -5, low, low, 9, -9, 100], dtype=dtype)
        bv = torch.tensor([2, 2, -2, -2, 3, 0, 0, -1, 0, 4, 4, -7], dtype=dtype)
        nonzero = bv != 0
        safe = torch.where(nonzero, bv, torch.ones_like(bv))
        want_div = torch.where(nonzero, av // safe, torch.zeros_like(av))
        want_mod = torch.where(nonzero, torch.remainder(av, safe), torch.zeros_like(av))
        name = f"intdiv_{str(dtype).removeprefix('torch.')}"
        kernel = LoopKernel(f"k_{name}", [fdiv, fmod], sizes(12))
        cases.append(Case(name, kernel, {"a": av, "b": bv}, {"fdiv": want_div, "fmod": want_mod}))
    # Floats: Python semantics, division by zero gives inf/nan.
    a = input_buffer("a", torch.float32, 9)
    b = input_buffer("b", torch.float32, 9)
    la, lb = _loader(a), _loader(b)
    fdiv = pointwise(
        "fdiv", torch.float32, sizes(9), lambda ops, i: ops.floordiv(la(ops, i), lb(ops, i))
    )
    fmod = pointwise(
        "fmod", torch.float32, sizes(9), lambda ops, i: ops.mod(la(ops, i), lb(ops, i))
    )
    av = torch.tensor([5.0, -5, 5, -5, 1, -1, 0, 7.5, -0.5])
    bv = torch.tensor([3.0, 3, -3, -3, 0, 0, 0, 2, 2])
    expected = {"fdiv": torch.floor_divide(av, bv), "fmod": torch.remainder(av, bv)}
    kernel = LoopKernel("k_floatdiv", [fdiv, fmod], sizes(9))
    cases.append(Case("floatdiv", kernel, {"a": av, "b": bv}, expected))
    return cases


@case
def unary_binary_ops() -> Case:
    # Many ops side by side (horizontal fusion: one loop, shared loads).
    x = input_buffer("x", torch.float32, 64)
    y = input_buffer("y", torch.float32, 64)
    n = input_buffer("n", torch.int64, 64)
    lx, ly, ln = _loader(x), _loader(y), _loader(n)
    xv = torch.randn(64) * 3
    xv[:8] = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, float("nan"), float("inf"), -0.0])
    yv = torch.rand(64) + 0.5
    nv = torch.randint(-20, 20, (64,))
    f32 = torch.float32
    float_unary = {
        "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "expm1": torch.expm1,
        "log": lambda t: torch.log(t.abs()), "log1p": lambda t: torch.log1p(t.abs()),
        "sqrt": lambda t: torch.sqrt(t.abs()), "rsqrt": lambda t: torch.rsqrt(t.abs()),
        "reciprocal": torch.reciprocal, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
        "tanh": torch.tanh, "sigmoid": torch.sigmoid, "erf": torch.erf, "floor": torch.floor,
        "ceil": torch.ceil, "trunc": torch.trunc, "round": torch.round, "sign": torch.sign,
    }  # fmt: skip
    nodes, expected = [], {}
    for op, ref in float_unary.items():
        needs_abs = op in ("log", "log1p", "sqrt", "rsqrt")

        def body(ops, i, op=op, needs_abs=needs_abs):
            v = lx(ops, i)
            return getattr(ops, op)(ops.abs(v) if needs_abs else v)

        nodes.append(pointwise(op, f32, sizes(64), body))
        expected[op] = ref(xv)
    binary = {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "truediv": torch.div,
        "pow": lambda a, b: torch.pow(a.abs(), b), "atan2": torch.atan2,
        "maximum": torch.maximum, "minimum": torch.minimum,
    }  # fmt: skip
    for op, ref in binary.items():

        def body(ops, i, op=op):
            a = lx(ops, i)
            return getattr(ops, op)(ops.abs(a) if op == "pow" else a, ly(ops, i))

        nodes.append(pointwise(f"b_{op}", f32, sizes(64), body))
        expected[f"b_{op}"] = ref(xv, yv)
    compare = {
        "eq": torch.eq,
        "ne": torch.ne,
        "lt": torch.lt,
        "le": torch.le,
        "gt": torch.gt,
        "ge": torch.ge,
    }
    for op, ref in compare.items():
        nodes.append(
            pointwise(
                f"c_{op}",
                torch.bool,
                sizes(64),
                lambda ops, i, op=op: getattr(ops, op)(lx(ops, i), ops.constant(0.5, f32)),
            )
        )
        expected[f"c_{op}"] = ref(xv, 0.5)

    def logic(ops, i):
        p = ops.gt(lx(ops, i), ops.constant(0.0, f32))
        q = ops.gt(ly(ops, i), ops.constant(1.0, f32))
        nanx = ops.isnan(lx(ops, i))
        infx = ops.isinf(lx(ops, i))
        both = ops.logical_and(p, ops.logical_not(q))
        return ops.logical_or(ops.logical_xor(both, nanx), infx)

    nodes.append(pointwise("logic", torch.bool, sizes(64), logic))
    p, q = xv > 0, yv > 1
    expected["logic"] = ((p & ~q) ^ xv.isnan()) | xv.isinf()
    i64 = torch.int64
    int_ops = {
        "i_abs": (lambda ops, v: ops.abs(v), nv.abs()),
        "i_neg": (lambda ops, v: ops.neg(v), -nv),
        "i_sign": (lambda ops, v: ops.sign(v), nv.sign()),
        "i_not": (lambda ops, v: ops.bitwise_not(v), ~nv),
        "i_and": (lambda ops, v: ops.bitwise_and(v, ops.constant(6, i64)), nv & 6),
        "i_or": (lambda ops, v: ops.bitwise_or(v, ops.constant(6, i64)), nv | 6),
        "i_xor": (lambda ops, v: ops.bitwise_xor(v, ops.constant(6, i64)), nv ^ 6),
        "i_pow": (lambda ops, v: ops.pow(v, ops.constant(3, i64)), nv**3),
        "i_max": (lambda ops, v: ops.maximum(v, ops.constant(2, i64)), nv.clamp(min=2)),
        "i_where": (
            lambda ops, v: ops.where(ops.lt(v, ops.constant(0, i64)), ops.mul(v, v), v),
            torch.where(nv < 0, nv * nv, nv),
        ),
        "i_round": (lambda ops, v: ops.floor(ops.round(v)), nv),
    }
    for name, (fn, want) in int_ops.items():
        nodes.append(pointwise(name, i64, sizes(64), lambda ops, i, fn=fn: fn(ops, ln(ops, i))))
        expected[name] = want
    kernel = LoopKernel("k_unary_binary_ops", nodes, sizes(64))
    return Case("unary_binary_ops", kernel, {"x": xv, "y": yv, "n": nv}, expected)


@case
def reductions() -> list[Case]:
    rows, cols = 6, 1000
    x = input_buffer("x", torch.float32, rows, cols)
    lx = _loader(x)
    xv = torch.randn(rows, cols)
    xv[1, 10] = float("nan")  # max, argmax: NaN wins; first NaN index
    xv[1, 20] = float("nan")
    xv[2, 5] = 100.0  # argmax ties: first index wins
    xv[2, 700] = 100.0
    xv[3, 999] = -100.0  # argmin at the tail (outside the lane loop)

    def red(name, kind, dtype=torch.float32):
        return reduction(
            name, dtype, sizes(rows), sizes(cols), kind, lambda ops, i, r: lx(ops, [i[0], r[0]])
        )

    nodes = [
        red("sum", "sum"),
        red("max", "max"),
        red("min", "min"),
        red("argmax", "argmax", torch.int64),
        red("argmin", "argmin", torch.int64),
    ]
    expected = {
        "sum": xv.sum(1),
        "max": xv.amax(1),
        "min": xv.amin(1),
        "argmax": xv.argmax(1),
        "argmin": xv.argmin(1),
    }
    first = Case(
        "reductions",
        LoopKernel("k_reductions", nodes, sizes(rows), sizes(cols)),
        {"x": xv},
        expected,
        atol=1e-4,
        rtol=1e-5,
    )

    # prod (short rows: no lanes), any/all of a comparison, sum of int32 -> int64.
    p = input_buffer("p", torch.float32, 4, 7)
    q = input_buffer("q", torch.int32, 4, 7)
    lp, lq = _loader(p), _loader(q)
    pv = torch.rand(4, 7) + 0.5
    qv = torch.randint(-(2**31), 2**31 - 1, (4, 7), dtype=torch.int32)
    qv[0] = torch.tensor([1, 0, 0, 0, 0, 0, 0], dtype=torch.int32)
    qv[1] = 0
    nodes = [
        reduction(
            "prod",
            torch.float32,
            sizes(4),
            sizes(7),
            "prod",
            lambda ops, i, r: lp(ops, [i[0], r[0]]),
        ),
        reduction(
            "any",
            torch.bool,
            sizes(4),
            sizes(7),
            "any",
            lambda ops, i, r: ops.ne(lq(ops, [i[0], r[0]]), ops.constant(0, torch.int32)),
            torch.bool,
        ),
        reduction(
            "all",
            torch.bool,
            sizes(4),
            sizes(7),
            "all",
            lambda ops, i, r: ops.ne(lq(ops, [i[0], r[0]]), ops.constant(0, torch.int32)),
            torch.bool,
        ),
        reduction(
            "isum",
            torch.int64,
            sizes(4),
            sizes(7),
            "sum",
            lambda ops, i, r: lq(ops, [i[0], r[0]]),
            torch.int32,
        ),
    ]
    expected = {
        "prod": pv.prod(1),
        "any": (qv != 0).any(1),
        "all": (qv != 0).all(1),
        "isum": qv.sum(1, dtype=torch.int64),
    }
    second = Case(
        "reductions_small",
        LoopKernel("k_reductions_small", nodes, sizes(4), sizes(7)),
        {"p": pv, "q": qv},
        expected,
    )

    # Two reduction dims, dynamic: x[3, s0, s1] over dims 1, 2 (s0=5, s1=40).
    z = input_buffer("z", torch.float32, 3, S0, S1)
    lz = _loader(z)
    zv = torch.randn(3, 5, 40)
    zv[2, 4, 39] = 50.0
    nodes = [
        reduction(
            "zsum",
            torch.float32,
            sizes(3),
            [S0, S1],
            "sum",
            lambda ops, i, r: lz(ops, [i[0], r[0], r[1]]),
        ),
        reduction(
            "zarg",
            torch.int64,
            sizes(3),
            [S0, S1],
            "argmax",
            lambda ops, i, r: lz(ops, [i[0], r[0], r[1]]),
        ),
    ]
    expected = {"zsum": zv.sum((1, 2)), "zarg": zv.reshape(3, -1).argmax(1)}
    third = Case(
        "reductions_2d",
        LoopKernel("k_reductions_2d", nodes, sizes(3), [S0, S1]),
        {"z": zv},
        expected,
        syms=[5, 40],
        atol=1e-4,
        rtol=1e-5,
    )

    # Whole-tensor reduction (outer == []).
    w = input_buffer("w", torch.float32, 100)
    lw = _loader(w)
    wv = torch.randn(100)
    total = reduction(
        "total", torch.float32, [], sizes(100), "sum", lambda ops, i, r: lw(ops, [r[0]])
    )
    fourth = Case(
        "reductions_full",
        LoopKernel("k_reductions_full", [total], [], sizes(100)),
        {"w": wv},
        {"total": wv.sum()},
        atol=1e-4,
        rtol=1e-5,
    )
    return [first, second, third, fourth]


@case
def softmax_like() -> Case:
    # scaled = x * 0.5 (local, recomputed), amax and denominator local
    # reductions, then out = exp(scaled - amax) / sum plus a per-row mean of
    # the probabilities (an outer pointwise output) and a bf16 row max.
    rows, cols = 9, 77
    x = input_buffer("x", torch.float32, rows, cols)
    lx = _loader(x)
    f32 = torch.float32
    scaled = pointwise(
        "scaled", f32, sizes(rows, cols), lambda ops, i: ops.mul(lx(ops, i), ops.constant(0.5, f32))
    )
    amax = reduction(
        "amax",
        f32,
        sizes(rows),
        sizes(cols),
        "max",
        lambda ops, i, r: ops.load("scaled", i[0] * cols + r[0]),
    )

    def shifted_exp(ops, row, col):
        return ops.exp(ops.sub(ops.load("scaled", row * cols + col), ops.load("amax", row)))

    denom = reduction(
        "denom",
        f32,
        sizes(rows),
        sizes(cols),
        "sum",
        lambda ops, i, r: shifted_exp(ops, i[0], r[0]),
    )
    out = pointwise(
        "out",
        f32,
        sizes(rows, cols),
        lambda ops, i: ops.truediv(shifted_exp(ops, i[0], i[1]), ops.load("denom", i[0])),
    )
    inv = pointwise("inv", f32, sizes(rows), lambda ops, i: ops.reciprocal(ops.load("denom", i[0])))
    rowmax = pointwise(
        "rowmax",
        torch.bfloat16,
        sizes(rows),
        lambda ops, i: ops.to_dtype(ops.load("amax", i[0]), torch.bfloat16),
    )
    kernel = LoopKernel(
        "k_softmax_like",
        [scaled, amax, denom, out, inv, rowmax],
        sizes(rows),
        sizes(cols),
        {"scaled", "amax", "denom"},
    )
    xv = torch.randn(rows, cols) * 3
    s = xv * 0.5
    e = torch.exp(s - s.amax(1, keepdim=True))
    expected = {
        "out": torch.softmax(s, 1),
        "inv": 1 / e.sum(1),
        "rowmax": s.amax(1).to(torch.bfloat16),
    }
    return Case("softmax_like", kernel, {"x": xv}, expected)


def _welford_norm(name: str, rows: int, cols: int, dtype: torch.dtype, xv: torch.Tensor) -> Case:
    # mean and m2 of each row in one Welford pass (m2 local), then an outer
    # var = m2 / cols and the normalised row (x - mean) * rsqrt(var + 1e-5)
    # in the same kernel: a layer norm's statistics and epilogue.
    x = input_buffer("x", dtype, rows, cols)
    lx = _loader(x)
    mean, m2 = welford(
        "stats", dtype, sizes(rows), sizes(cols), lambda ops, i, r: lx(ops, [i[0], r[0]])
    )
    var = pointwise(
        "var",
        dtype,
        sizes(rows),
        lambda ops, i: ops.truediv(ops.load("stats_m2", i[0]), ops.constant(float(cols), dtype)),
    )

    def normalised(ops, i):
        centred = ops.sub(lx(ops, i), ops.load("stats_mean", i[0]))
        eps = ops.add(ops.load("var", i[0]), ops.constant(1e-5, dtype))
        return ops.mul(centred, ops.rsqrt(eps))

    out = pointwise("out", dtype, sizes(rows, cols), normalised)
    kernel = LoopKernel(f"k_{name}", [mean, m2, var, out], sizes(rows), sizes(cols), {"stats_m2"})
    x64 = xv.double()
    want_mean = x64.mean(1) if cols else torch.full((rows,), float("nan"), dtype=torch.float64)
    want_var = (
        x64.var(1, correction=0) if cols else torch.full((rows,), float("nan"), dtype=torch.float64)
    )
    want_out = (x64 - x64.mean(1, keepdim=True)) * torch.rsqrt(want_var[:, None] + 1e-5)
    expected = {
        "stats_mean": want_mean.to(dtype),
        "var": want_var.to(dtype),
        "out": want_out.to(dtype),
    }
    return Case(name, kernel, {"x": xv}, expected, atol=2e-3, rtol=1e-3)


@case
def welford_norms() -> list[Case]:
    # Large mean (1e4) and variance ~1: sum of squares minus squared mean
    # would lose every digit in float32; Welford keeps ~4. Lanes (1000 cols),
    # the scalar path (7 cols, float64) and an empty row (NaN mean).
    gen = torch.Generator().manual_seed(0)
    f64 = torch.float64
    return [
        _welford_norm(
            "welford_lanes", 6, 1000, torch.float32, 1e4 + torch.randn(6, 1000, generator=gen)
        ),
        _welford_norm(
            "welford_scalar_f64", 5, 7, f64, 1e4 + torch.randn(5, 7, dtype=f64, generator=gen)
        ),
        _welford_norm("welford_empty", 3, 0, torch.float32, torch.empty(3, 0)),
    ]


@case
def broadcast_unused_vars() -> list[Case]:
    # Bodies that ignore loop variables (broadcasts): out[i0, i1, i2] = y[i2]
    # and total[i] = sum over 40 of z[i]. Compiled with -Werror: no unused locals.
    y = input_buffer("y", torch.float32, 4)
    z = input_buffer("z", torch.float32, 3)
    ly, lz = _loader(y), _loader(z)
    out = pointwise("out", torch.float32, sizes(2, 3, 4), lambda ops, i: ly(ops, [i[2]]))
    total = reduction(
        "total", torch.float32, sizes(3), sizes(40), "sum", lambda ops, i, r: lz(ops, [i[0]])
    )
    yv, zv = torch.randn(4), torch.randn(3)
    cases = [
        Case(
            "broadcast_pointwise",
            LoopKernel("k_broadcast_pointwise", [out], sizes(2, 3, 4)),
            {"y": yv},
            {"out": yv.expand(2, 3, 4)},
        ),
        Case(
            "broadcast_sum",
            LoopKernel("k_broadcast_sum", [total], sizes(3), sizes(40)),
            {"z": zv},
            {"total": zv * 40},
        ),
    ]
    return cases


@case
def masked_pad() -> Case:
    # constant_pad_nd(x, (2, 3, 1, 0), value=-1): out[i, j] = x[i - 1, j - 2]
    # where inside, else -1. Reads outside x must not happen (the guard).
    h, w = 4, 6
    x = input_buffer("x", torch.float32, h, w)
    lx = _loader(x)
    i64 = torch.int64

    def body(ops, i):
        r = ops.index_expr(i[0] - 1, i64)
        c = ops.index_expr(i[1] - 2, i64)
        inside = ops.logical_and(
            ops.logical_and(ops.ge(r, ops.constant(0, i64)), ops.lt(r, ops.constant(h, i64))),
            ops.logical_and(ops.ge(c, ops.constant(0, i64)), ops.lt(c, ops.constant(w, i64))),
        )
        return ops.masked(inside, lambda: ops.exp(lx(ops, [i[0] - 1, i[1] - 2])), -1.0)

    out = pointwise("out", torch.float32, sizes(h + 1, w + 5), body)
    xv = torch.randn(h, w)
    expected = torch.nn.functional.pad(xv.exp(), (2, 3, 1, 0), value=-1.0)
    return Case(
        "masked_pad",
        LoopKernel("k_masked_pad", [out], sizes(h + 1, w + 5)),
        {"x": xv},
        {"out": expected},
    )


def _embedding(name: str, idx_values: list[int]) -> Case:
    # out[i, j] = table[idx[i], j]; negative indices wrap once.
    table = input_buffer("table", torch.float32, 6, 3)
    idx = input_buffer("idx", torch.int64, len(idx_values))
    ltab, lidx = _loader(table), _loader(idx)

    def body(ops, i):
        row = ops.indirect_indexing(lidx(ops, [i[0]]), I(6), 'input 1 "idx" of embedding')
        return ltab(ops, [row, i[1]])

    out = pointwise("out", torch.float32, sizes(len(idx_values), 3), body)
    tv = torch.randn(6, 3)
    iv = torch.tensor(idx_values)
    kernel = LoopKernel(f"k_{name}", [out], sizes(len(idx_values), 3))
    if all(-6 <= v < 6 for v in idx_values):
        return Case(name, kernel, {"table": tv, "idx": iv}, {"out": tv[iv]})
    return Case(
        name,
        kernel,
        {"table": tv, "idx": iv},
        {},
        expect_rc=17,  # AOTC_ABI_OUT_OF_RANGE
        expect_message=[
            f"k_{name}:0",
            "index 10 out of range [0, 6)",
            'input 1 "idx" of embedding',
        ],
    )


@case
def indirect() -> list[Case]:
    return [_embedding("embedding", [0, 5, -1, 2, -6]), _embedding("embedding_oob", [1, 10, 2])]
