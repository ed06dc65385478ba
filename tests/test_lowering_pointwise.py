"""Pointwise, reduction and norm lowerings against torch eager.

Each lowering runs on a fresh registry with its inputs built as
Buffer(kind=INPUT) (not through the graph walk); lowering_interp.Interpreter
evaluates the recorded nodes and the result at every index, checking the
ops.py contract on the way, and the values are compared with eager's on
random inputs (never zeros): float32 tightly, bfloat16 within eager's own
bf16 rounding, integers and bools exactly.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import sympy
import torch
from lowering_interp import HALF, Interpreter, materialize, run_lowering  # tests/ is on sys.path

from aot.ir.nodes import Buffer, BufferKind, Layout, Pointwise, Reduction
from aot.ir.ops import OP_NAMES, PrintHandler
from aot.ir.symbols import index_vars
from aot.lowering import norms, pointwise, reductions
from aot.lowering.common import broadcast_shapes, promote_types
from aot.lowering.context import LoweringContext
from aot.lowering.registry import LoweringRegistry

aten = torch.ops.aten


def test_interpreter_covers_every_op() -> None:
    assert [name for name in OP_NAMES if not hasattr(Interpreter, name)] == []


def make_registry() -> LoweringRegistry:
    registry = LoweringRegistry()
    for family in (pointwise, reductions, norms):
        family.register(registry)
    return registry


REGISTRY = make_registry()


def lower(target: Any, *args: Any, **kwargs: Any) -> tuple[Any, LoweringContext, Interpreter]:
    return run_lowering(REGISTRY, target, *args, **kwargs)


def evaluate(target: Any, *args: Any, **kwargs: Any) -> Any:
    out, _, interp = lower(target, *args, **kwargs)
    if isinstance(out, tuple | list):
        return tuple(materialize(interp, v) for v in out)
    return materialize(interp, out)


def check(target: Any, *args: Any, expected: Any = None, **kwargs: Any) -> None:
    """The lowering of |target| agrees with eager: dtype, shape and values
    (exact for integers and bool; bf16 within eager's own bf16 rounding)."""
    got = evaluate(target, *args, **kwargs)
    want = target(*args, **kwargs) if expected is None else expected
    got_list = got if isinstance(got, tuple) else (got,)
    want_list = tuple(want) if isinstance(want, tuple | list) else (want,)
    assert len(got_list) == len(want_list)
    for g, w in zip(got_list, want_list, strict=True):
        assert g.dtype == w.dtype, f"{target}: dtype {g.dtype} != eager {w.dtype}"
        assert g.shape == w.shape, f"{target}: shape {tuple(g.shape)} != eager {tuple(w.shape)}"
        if w.dtype in HALF:
            tol = {"rtol": 1.6e-2, "atol": 1e-2}
        elif w.dtype.is_floating_point:
            tol = {"rtol": 2e-5, "atol": 2e-6}
        else:
            tol = {"rtol": 0, "atol": 0}
        torch.testing.assert_close(g, w, equal_nan=True, **tol)


def rand(
    *shape: int, dtype: torch.dtype = torch.float32, low: float = -3, high: float = 3
) -> torch.Tensor:
    """Random values in [low, high), never exactly zero."""
    t = torch.rand(shape, dtype=torch.float64) * (high - low) + low
    t = torch.where(t == 0, 0.5, t)
    return t.to(dtype)


def randint(
    *shape: int, dtype: torch.dtype = torch.int64, low: int = -9, high: int = 10
) -> torch.Tensor:
    return torch.randint(low, high, shape, dtype=dtype)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


FLOATS = (torch.float32, torch.bfloat16)

# -- common.py ------------------------------------------------------------------------


def _t(dtype: torch.dtype, ndim: int) -> tuple[torch.dtype, int]:
    return (dtype, ndim)


@pytest.mark.parametrize(
    "args",
    [
        (_t(torch.int8, 1), _t(torch.int64, 0)),  # a 0-d int64 does not widen int8
        (_t(torch.int8, 1), _t(torch.float64, 0)),  # but a 0-d float makes it float
        (_t(torch.int32, 1), 2.5),
        (_t(torch.uint8, 1), 3),
        (_t(torch.bool, 1), True),
        (_t(torch.bool, 1), 2),
        (_t(torch.bfloat16, 1), 1.5),
        (_t(torch.bfloat16, 1), _t(torch.float32, 0)),
        (_t(torch.float16, 1), _t(torch.bfloat16, 1)),
        (_t(torch.int64, 0), _t(torch.bool, 1), _t(torch.float64, 0)),
        (_t(torch.int32, 1), _t(torch.int64, 0), _t(torch.int16, 0)),
        (_t(torch.int16, 0), _t(torch.float16, 0), _t(torch.int8, 1)),
    ],
)
def test_promote_types_matches_result_type(args: tuple[Any, ...]) -> None:
    values: list[Any] = []
    reference: list[Any] = []
    for arg in args:
        if isinstance(arg, tuple):
            dtype, ndim = arg
            reference.append(torch.ones((2,) * ndim, dtype=dtype))
            values.append(Buffer("b", dtype, Layout.contiguous([sympy.Integer(2)] * ndim)))
        else:
            reference.append(arg)
            values.append(arg)
    if len(reference) == 2:
        want = torch.result_type(*reference)
    else:  # clamp.Tensor promotes its three operands together
        want = torch.clamp(*reference).dtype
    assert promote_types(*values) == want


def test_broadcast_shapes() -> None:
    s = sympy.Symbol("s0", integer=True, positive=True)
    assert broadcast_shapes([3, 1, 5], [4, 1]) == [3, 4, 5]
    assert broadcast_shapes([], [2]) == [2]
    assert broadcast_shapes([s, 1], [1, 7]) == [s, 7]
    with pytest.raises(ValueError, match="cannot broadcast"):
        broadcast_shapes([3], [4])


def test_bf16_add_upcasts_and_rounds_once() -> None:
    x = Buffer("x", torch.bfloat16, Layout.contiguous([sympy.Integer(4)]), BufferKind.INPUT)
    out = REGISTRY.get(aten.add.Tensor)(LoweringContext(), x, 1.5)
    assert isinstance(out, Pointwise) and out.dtype == torch.bfloat16
    body = out.inner_fn(PrintHandler(), index_vars(1))
    assert body == "to_dtype(add(to_dtype(load(x, i0), float32), constant(1.5, float32)), bfloat16)"


# -- pointwise -------------------------------------------------------------------------

UNARY = [
    aten.exp.default, aten.expm1.default, aten.sin.default, aten.cos.default, aten.tan.default,
    aten.tanh.default, aten.sigmoid.default, aten.erf.default, aten.floor.default,
    aten.ceil.default, aten.trunc.default, aten.round.default, aten.neg.default,
    aten.abs.default, aten.sign.default, aten.relu.default, aten.silu.default,
    aten.exp2.default, aten.atan.default, aten.sinh.default, aten.cosh.default,
    aten.frac.default, aten.gelu.default, aten.hardtanh.default, aten.leaky_relu.default,
    aten.elu.default,
]  # fmt: skip
POSITIVE = [
    aten.log.default, aten.log1p.default, aten.log2.default, aten.log10.default,
    aten.sqrt.default, aten.rsqrt.default, aten.reciprocal.default,
]  # fmt: skip


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", UNARY + POSITIVE, ids=str)
def test_unary(op: Any, dtype: torch.dtype) -> None:
    low = 0.1 if op in POSITIVE else -3
    check(op, rand(3, 5, dtype=dtype, low=low))


@pytest.mark.parametrize(
    "op", [aten.neg.default, aten.abs.default, aten.sign.default, aten.floor.default,
           aten.exp.default, aten.sigmoid.default, aten.relu.default],
    ids=str,
)  # fmt: skip
def test_unary_integer(op: Any) -> None:
    check(op, randint(4, 3))


@pytest.mark.parametrize("dtype", FLOATS)
def test_activation_arguments(dtype: torch.dtype) -> None:
    x = rand(4, 6, dtype=dtype)
    check(aten.gelu.default, x, approximate="tanh")
    check(aten.hardtanh.default, x, -0.5, 2.0)
    check(aten.leaky_relu.default, x, 0.2)
    check(aten.elu.default, x, 1.5, 1.05, 0.7)
    check(aten.round.decimals, x * 10, decimals=1)
    check(aten.round.decimals, x * 1000, decimals=-2)


def test_gelu_formula_is_eagers() -> None:
    """x * 0.5 * (1 + erf(x * M_SQRT1_2)), as eager's CPU kernel (bitwise
    agreement then rests on the backend's erf)."""
    x = Buffer("x", torch.float32, Layout.contiguous([sympy.Integer(4)]), BufferKind.INPUT)
    out = REGISTRY.get(aten.gelu.default)(LoweringContext(), x)
    body = out.inner_fn(PrintHandler(), index_vars(1))
    assert body == (
        "mul(mul(load(x, i0), constant(0.5, float32)), add(constant(1.0, float32), "
        "erf(mul(load(x, i0), constant(0.7071067811865476, float32)))))"
    )


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4)), ((3, 1, 5), (4, 1)), ((), (2, 3)), ((2, 3), ()), ((1,), (4,))]
)
@pytest.mark.parametrize(
    "op",
    [aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.maximum.default,
     aten.minimum.default, aten.atan2.default, aten.pow.Tensor_Tensor, aten.rsub.Tensor,
     aten.fmax.default, aten.fmin.default, aten.remainder.Tensor, aten.fmod.Tensor],
    ids=str,
)  # fmt: skip
def test_binary_broadcasting(
    op: Any, shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype
) -> None:
    low = 0.2 if op == aten.pow.Tensor_Tensor else -3
    check(op, rand(*shapes[0], dtype=dtype, low=low), rand(*shapes[1], dtype=dtype, low=low))


def test_mixed_dtypes_and_scalars() -> None:
    i, f, b = randint(3, 4), rand(3, 4), rand(3, 4) > 0
    check(aten.add.Tensor, i, f)
    check(aten.add.Tensor, i, torch.tensor(2.5))  # 0-d float makes int float
    check(
        aten.add.Tensor, randint(3, dtype=torch.int8), torch.tensor(300)
    )  # 0-d int does not widen
    check(aten.add.Tensor, f.bfloat16(), f)  # bf16 + f32 -> f32
    check(aten.add.Tensor, b, b)
    check(aten.mul.Tensor, b, b)
    check(aten.add.Scalar, i, 2.5)
    check(aten.add.Tensor, i, randint(3, 4), alpha=3)
    check(aten.sub.Tensor, f, i, alpha=0.5)
    check(aten.rsub.Scalar, f, 2.0, 3)
    check(aten.mul.Scalar, randint(4, dtype=torch.uint8, low=0), 3)
    check(aten.div.Tensor, i, randint(3, 4, low=1))  # int / int -> float
    check(aten.div.Scalar, f.bfloat16(), 3.0)
    check(aten.add.Tensor, rand(2, 3).t(), rand(3, 2))  # strided input


def test_division_modes_and_zero_divisors() -> None:
    a, b = randint(6, 7), randint(6, 7)
    b[0] = 0
    safe = torch.where(b == 0, 1, b)
    for mode in ("trunc", "floor"):
        want = torch.where(b == 0, 0, torch.div(a, safe, rounding_mode=mode))
        check(aten.div.Tensor_mode, a, b, rounding_mode=mode, expected=want)
    check(aten.remainder.Tensor, a, b, expected=torch.where(b == 0, 0, torch.remainder(a, safe)))
    check(aten.fmod.Tensor, a, b, expected=torch.where(b == 0, 0, torch.fmod(a, safe)))
    check(aten.floor_divide.default, a, b, expected=torch.where(b == 0, 0, a // safe))
    x, y = rand(5, 6) * 4, rand(5, 6)
    for mode in ("trunc", "floor", None):
        check(aten.div.Tensor_mode, x, y, rounding_mode=mode)
        check(aten.div.Scalar_mode, x, -1.5, rounding_mode=mode)
    check(aten.remainder.Scalar, x, 1.5)
    check(aten.remainder.Scalar_Tensor, 5, randint(4, low=1))
    check(aten.fmod.Scalar, x, -1.5)
    check(aten.floor_divide.Scalar, a, 4)


@pytest.mark.parametrize("dtype", FLOATS)
def test_pow(dtype: torch.dtype) -> None:
    x = rand(3, 4, dtype=dtype, low=0.1)
    for exponent in (2, 3, 0.5, -0.5, -1, -2, 1.7, 0):
        check(aten.pow.Tensor_Scalar, x, exponent)
    check(aten.pow.Scalar, 2.0, rand(3, dtype=dtype))
    check(aten.pow.Tensor_Scalar, randint(3, 4), 2)
    check(aten.pow.Tensor_Scalar, randint(3, 4), 2.0)  # int ** float -> float
    check(aten.pow.Tensor_Tensor, randint(4, low=0), randint(4, low=0, high=4))
    y = rand(64)
    assert torch.equal(evaluate(aten.pow.Tensor_Scalar, y, 2), aten.pow(y, 2))


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_propagation_and_clamp(dtype: torch.dtype) -> None:
    x = rand(4, 5, dtype=dtype)
    x[1, 2] = float("nan")
    y = rand(4, 5, dtype=dtype)
    y[0, 0] = float("nan")
    check(aten.maximum.default, x, y)
    check(aten.minimum.default, x, y)
    check(aten.fmax.default, x, y)
    check(aten.relu.default, x)
    check(aten.clamp.default, x, -0.5, 0.5)
    check(aten.clamp.default, x, None, 0.5)
    check(aten.clamp.default, x, 1.0, -1.0)  # min > max gives max
    check(aten.clamp_min.default, x, 0.25)
    check(aten.clamp_max.default, randint(4, 5), 2)
    check(aten.clamp.Tensor, x, rand(5, dtype=dtype), torch.tensor(2.0, dtype=dtype))
    check(aten.clamp_min.Tensor, x, rand(4, 1, dtype=dtype))
    check(aten.clamp.default, randint(4, 5), 0.5, 2.5)  # float bounds make int float


@pytest.mark.parametrize("dtype", FLOATS)
def test_comparisons_logical_and_where(dtype: torch.dtype) -> None:
    x, y, i = rand(3, 4, dtype=dtype), rand(4, dtype=dtype), randint(3, 4)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        packet = getattr(aten, name)
        check(packet.Tensor, x, y)
        check(packet.Tensor, i, x)
        check(packet.Scalar, i, 2.5)
        check(packet.Scalar, x, 0)
    check(aten.eq.Tensor, x, x.clone())
    for name in ("logical_and", "logical_or", "logical_xor"):
        check(getattr(aten, name).default, x, i)
    check(aten.logical_not.default, i)
    cond = rand(3, 1) > 0
    check(aten.where.self, cond, x, y)
    check(aten.where.self, cond, i, x)
    check(aten.where.ScalarSelf, cond, 2.0, i)
    check(aten.where.ScalarOther, cond, x, -1)
    check(aten.where.Scalar, cond, 1.5, 0)
    check(aten.masked_fill.Scalar, x, rand(4) > 0, -2.0)
    check(aten.masked_fill.Scalar, i, cond, 7)
    check(aten.masked_fill.Tensor, x, cond, torch.tensor(3.25))


def test_bitwise() -> None:
    a, b = randint(3, 4, low=-100, high=100), randint(4, low=-100, high=100)
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        packet = getattr(aten, name)
        check(packet.Tensor, a, b)
        check(packet.Scalar, a, 6)
        check(packet.Tensor, a > 0, b > 0)
    check(aten.bitwise_not.default, a.to(torch.int32))
    check(aten.bitwise_not.default, a > 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_classification(dtype: torch.dtype) -> None:
    x = rand(2, 5, dtype=dtype)
    x[0, 1], x[1, 2], x[1, 3] = float("nan"), float("inf"), -float("inf")
    for op in (aten.isnan.default, aten.isinf.default, aten.isfinite.default):
        check(op, x)
        check(op, randint(3))


def test_conversions_and_copies() -> None:
    x = rand(3, 4) * 5
    for dtype in (torch.bfloat16, torch.float16, torch.int32, torch.int64, torch.bool, torch.uint8):
        src = x.abs() if dtype == torch.uint8 else x
        check(aten._to_copy.default, src, dtype=dtype)
        check(aten._to_copy.default, src.bfloat16(), dtype=dtype)
    check(aten._to_copy.default, x.bfloat16(), dtype=torch.float32)
    check(aten._to_copy.default, randint(3), dtype=torch.float32)
    check(aten._to_copy.default, x)
    check(aten._to_copy.default, x.t(), dtype=torch.bfloat16)
    check(aten.copy.default, x, rand(4, dtype=torch.bfloat16))
    check(aten.fill.Scalar, x, 2.5)
    check(aten.fill.Scalar, randint(3), 2.7)
    check(aten.fill.Tensor, x.bfloat16(), torch.tensor(1.5))


# -- reductions ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "dim,keepdim", [([1], False), ([0, 2], True), ([-1], True), ([], False), (None, False)]
)
def test_sum_mean_amax(dim: Any, keepdim: bool, dtype: torch.dtype) -> None:
    x = rand(3, 4, 5, dtype=dtype)
    check(aten.sum.dim_IntList, x, dim, keepdim)
    check(aten.mean.dim, x, dim, keepdim)
    check(aten.amax.default, x, dim or [], keepdim)
    check(aten.amin.default, x, dim or [], keepdim)
    check(aten.prod.dim_int, rand(3, 4, 5, dtype=dtype, low=0.5, high=1.5), 1, keepdim)
    check(aten.any.dims, x > 1, dim, keepdim)
    check(aten.all.dims, x > -2.5, dim, keepdim)


def test_reduction_dtypes() -> None:
    i = randint(4, 5, dtype=torch.int32)
    check(aten.sum.dim_IntList, i, [1])  # int32 -> int64
    check(aten.sum.default, i > 0)  # bool -> int64
    check(aten.sum.default, rand(4, 5), dtype=torch.float64)
    check(aten.sum.dim_IntList, rand(4, 5, dtype=torch.bfloat16), [0], dtype=torch.float32)
    check(aten.mean.default, rand(4, 5, dtype=torch.bfloat16))
    check(aten.prod.default, randint(4, low=1, high=4, dtype=torch.int32))
    check(aten.any.default, randint(4, 5, dtype=torch.uint8, low=0, high=2))
    check(aten.max.default, randint(4, 5))
    for op in (aten.sum.default, aten.mean.default, aten.argmax.default, aten.amax.default):
        check(op, torch.tensor(2.5))  # 0-d input
    check(aten.max.dim, torch.tensor(2.5), 0, True)
    _, ctx, _ = lower(aten.sum.default, rand(4, dtype=torch.bfloat16))
    (node,) = ctx.nodes
    assert isinstance(node.data, Reduction)
    assert (node.data.src_dtype, node.data.dtype) == (torch.float32, torch.bfloat16)


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_min_argmax_with_nan_and_ties(dtype: torch.dtype) -> None:
    x = torch.tensor(
        [[1.0, 3.0, 3.0, 0.5], [2.0, float("nan"), 5.0, float("nan")], [-1, -1, -2, -2]]
    )
    x = x.to(dtype)
    for dim in (0, 1, -1):
        check(aten.max.dim, x, dim)
        check(aten.min.dim, x, dim, True)
        check(aten.argmax.default, x, dim)
        check(aten.argmin.default, x, dim, True)
    check(aten.argmax.default, x)
    check(aten.argmax.default, rand(3, 4, dtype=dtype), None, True)
    check(aten.argmin.default, randint(5, 6))
    check(aten.max.default, x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_var_std(dtype: torch.dtype) -> None:
    x = rand(3, 4, 5, dtype=dtype) + 10  # offset: Welford keeps precision
    check(aten.var.correction, x, [1], correction=0)
    check(aten.var.correction, x, None)
    check(aten.var.correction, x, [0, 2], correction=1, keepdim=True)
    check(aten.std.correction, x, [-1], correction=1)
    check(aten.var.dim, x, [2], False)
    check(aten.std.dim, x, [0], True, True)
    check(aten.var.default, x)
    check(aten.var_mean.correction, x, [1], correction=1)
    check(aten.std_mean.correction, x, [0, 1], keepdim=True)


def test_var_is_one_welford_reduction_with_a_large_mean() -> None:
    """var_mean is one Welford reduction (two outputs, one pass); with x =
    1e4 + randn in float32 (sum of squares minus squared mean would keep no
    digit) it agrees with a float64 reference."""
    x = torch.randn(4, 256) + 1e4
    (var, mean), ctx, _ = lower(aten.var_mean.correction, x, [1], correction=1)
    welford = [n.data for n in ctx.nodes if isinstance(n.data, Reduction)]
    assert [(w.reduction_type, w.output_index) for w in welford] == [("welford", 0), ("welford", 1)]
    assert welford[0].group == welford[1].group == ctx.nodes[0].name
    got_var, got_mean = evaluate(aten.var_mean.correction, x, [1], correction=1)
    x64 = x.double()
    torch.testing.assert_close(got_var.double(), x64.var(1), rtol=1e-3, atol=0)
    torch.testing.assert_close(got_mean.double(), x64.mean(1), rtol=1e-6, atol=0)


def test_var_of_an_empty_dim_is_nan() -> None:
    check(aten.var_mean.correction, torch.empty(3, 0), [1], correction=0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [-1, 1, 0])
def test_softmax(dim: int, dtype: torch.dtype) -> None:
    x = rand(3, 4, 5, dtype=dtype) * 3
    check(aten._softmax.default, x, dim, False)
    check(aten._log_softmax.default, x, dim, False)
    if dtype != torch.float32:  # eager's CPU kernel refuses half_to_float
        want = aten._softmax.default(x.float(), dim, False)
        check(aten._softmax.default, x, dim, True, expected=want)
    check(aten.logsumexp.default, x, [dim], dim == 0)


def test_softmax_is_two_reductions_and_a_pointwise() -> None:
    out, ctx, _ = lower(aten._softmax.default, rand(4, 8), -1, False)
    assert isinstance(out, Pointwise)
    kinds = [n.data.reduction_type for n in ctx.nodes if isinstance(n.data, Reduction)]
    assert kinds == ["max", "sum"] and len(ctx.nodes) == 2


def test_logsumexp_infinities() -> None:
    x = rand(3, 4)
    x[0] = -float("inf")
    x[1, 2] = float("inf")
    check(aten.logsumexp.default, x, [1])
    check(aten.logsumexp.default, randint(3, 4), [0, 1], True)  # int -> float


@pytest.mark.parametrize("ord", [2, 1, 0, 3.5, float("inf"), -float("inf")])
def test_vector_norm(ord: float) -> None:
    x = rand(3, 4, 5)
    check(aten.linalg_vector_norm.default, x, ord, [1], True)
    check(aten.linalg_vector_norm.default, x.bfloat16(), ord)


# -- norms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(affine: bool, dtype: torch.dtype) -> None:
    x = rand(2, 3, 8, dtype=dtype) + 1
    w = rand(3, 8, dtype=dtype) if affine else None
    b = rand(3, 8, dtype=dtype) if affine else None
    check(aten.native_layer_norm.default, x, [3, 8], w, b, 1e-5)
    check(aten.native_layer_norm.default, x, [8], w[0] if affine else None, None, 1e-3)
    out, _, _ = lower(aten.native_layer_norm.default, x, [8], None, None, 1e-5)
    assert isinstance(out[0], Pointwise)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 4)])
def test_batch_norm_inference(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = rand(*shape, dtype=dtype)
    w, b, mean = rand(3), rand(3), rand(3)
    var = rand(3, low=0.5, high=2)
    check(aten._native_batch_norm_legit_no_training.default, x, w, b, mean, var, 0.1, 1e-5)
    check(aten._native_batch_norm_legit_no_training.default, x, None, None, mean, var, 0.1, 1e-5)
    check(aten.native_batch_norm.default, x.float(), w, b, mean, var, False, 0.1, 1e-5)
    check(aten._native_batch_norm_legit.no_stats, x.float(), w, b, True, 0.1, 1e-5)
    with pytest.raises(ValueError, match="model.eval"):
        evaluate(aten.native_batch_norm.default, x, w, b, mean, var, True, 0.1, 1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 3), 3), ((2, 4, 5), 2), ((3, 4), 1)])
def test_group_norm(shape: tuple[int, ...], groups: int, dtype: torch.dtype) -> None:
    x = rand(*shape, dtype=dtype) + 1
    n, c = shape[0], shape[1]
    hxw = math.prod(shape[2:])
    w, b = rand(c, dtype=dtype), rand(c, dtype=dtype)
    check(aten.native_group_norm.default, x, w, b, n, c, hxw, groups, 1e-5)
    check(aten.native_group_norm.default, x, None, None, n, c, hxw, groups, 1e-5)


def test_symbolic_sizes_and_scalars() -> None:
    """A dynamic size used as a value, or as a reduction's count, is an index_expr."""
    s0 = sympy.Symbol("s0", integer=True, positive=True)
    x = Buffer("x", torch.float32, Layout.contiguous([s0, sympy.Integer(4)]), BufferKind.INPUT)
    ctx = LoweringContext()
    scaled = REGISTRY.get(aten.mul.Tensor)(ctx, x, s0)
    assert scaled.get_size() == [s0, 4]
    assert "index_expr(s0, float32)" in scaled.inner_fn(PrintHandler(), index_vars(2))
    mean = REGISTRY.get(aten.mean.dim)(ctx, x, [0])
    (node,) = ctx.nodes
    assert node.data.reduction_ranges == [s0] and mean.get_size() == [4]
    assert mean.inner_fn(PrintHandler(), index_vars(1)) == (
        f"truediv(load({node.name}, i0), index_expr(s0, float32))"
    )
