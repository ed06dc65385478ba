"""Pointwise lowerings: arithmetic, math, comparisons, logical and bitwise ops,
activations and dtype conversions. Every result is an unrealized Pointwise
(inlined into its readers); dtypes follow [Note: pointwise dtypes] in common.py.

Numerics follow eager's CPU kernels where the formula matters (gelu, pow with
small constant exponents, elu with expm1, trunc/floor division), so that the
compiled model and eager agree to the last bit as often as possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..ir.nodes import Pointwise, TensorValue
from ..ir.ops import ORTHOGONAL_POLYNOMIALS
from .common import (
    Promotion,
    Scalar,
    ValueOrScalar,
    broadcast_shapes,
    broadcast_to,
    compute_dtype,
    elementwise_dtypes,
    identity,
    is_float,
    is_integer,
    is_tensor,
    make_pointwise,
    scalar_as,
    to_loader,
)
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
Body = Callable[..., Any]

# -- unary ops ----------------------------------------------------------------

# Float math: integer and bool inputs compute in the default float dtype.
_FLOAT_UNARY: dict[Any, Body] = {
    aten.exp.default: lambda ops, x: ops.exp(x),
    aten.expm1.default: lambda ops, x: ops.expm1(x),
    aten.log.default: lambda ops, x: ops.log(x),
    aten.log1p.default: lambda ops, x: ops.log1p(x),
    aten.sqrt.default: lambda ops, x: ops.sqrt(x),
    aten.rsqrt.default: lambda ops, x: ops.rsqrt(x),
    aten.reciprocal.default: lambda ops, x: ops.reciprocal(x),
    aten.sin.default: lambda ops, x: ops.sin(x),
    aten.cos.default: lambda ops, x: ops.cos(x),
    aten.tan.default: lambda ops, x: ops.tan(x),
    aten.tanh.default: lambda ops, x: ops.tanh(x),
    aten.sigmoid.default: lambda ops, x: ops.sigmoid(x),
    aten.erf.default: lambda ops, x: ops.erf(x),
}

# Ops that keep the input dtype and are the identity on integers.
_ROUNDING_UNARY: dict[Any, Body] = {
    aten.floor.default: lambda ops, x: ops.floor(x),
    aten.ceil.default: lambda ops, x: ops.ceil(x),
    aten.trunc.default: lambda ops, x: ops.trunc(x),
    aten.round.default: lambda ops, x: ops.round(x),
}


def _float_unary(body: Body) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        return make_pointwise(body, x, promotion=Promotion.INT_TO_FLOAT)

    return lower


def _rounding_unary(body: Body) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        if not is_float(x.dtype):
            return identity(x)
        return make_pointwise(body, x)

    return lower


def _float_math(
    body: Callable[[Any, Any, Callable[[float], Any]], Any],
) -> Callable[..., Pointwise]:
    """A float unary op whose body needs constants: body(ops, x, const)."""

    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        dtype, _ = elementwise_dtypes(x, promotion=Promotion.INT_TO_FLOAT)
        return make_pointwise(
            lambda ops, v: body(ops, v, lambda c: ops.constant(c, dtype)),
            x,
            promotion=Promotion.INT_TO_FLOAT,
        )

    return lower


_FLOAT_MATH: dict[Any, Callable[[Any, Any, Callable[[float], Any]], Any]] = {
    aten.exp2.default: lambda ops, x, c: ops.pow(c(2.0), x),
    aten.log2.default: lambda ops, x, c: ops.mul(ops.log(x), c(1.0 / math.log(2.0))),
    aten.log10.default: lambda ops, x, c: ops.mul(ops.log(x), c(1.0 / math.log(10.0))),
    aten.atan.default: lambda ops, x, c: ops.atan2(x, c(1.0)),
    # expm1 keeps sinh accurate near 0, where exp(x) - exp(-x) cancels.
    aten.sinh.default: lambda ops, x, c: ops.mul(
        ops.sub(ops.expm1(x), ops.expm1(ops.neg(x))), c(0.5)
    ),
    aten.cosh.default: lambda ops, x, c: ops.mul(ops.add(ops.exp(x), ops.exp(ops.neg(x))), c(0.5)),
    aten.frac.default: lambda ops, x, c: ops.sub(x, ops.trunc(x)),
    aten.silu.default: lambda ops, x, c: ops.truediv(x, ops.add(c(1.0), ops.exp(ops.neg(x)))),
}


def _classify(ctx: LoweringContext, x: TensorValue, op: str) -> Pointwise:
    """isnan / isinf / isfinite; constant for non-float inputs."""
    if not is_float(x.dtype):
        result = op == "isfinite"
        return make_pointwise(lambda ops, v: ops.constant(result, torch.bool), x, dtype=torch.bool)

    def body(ops: Any, v: Any) -> Any:
        if op == "isnan":
            return ops.isnan(v)
        if op == "isinf":
            return ops.isinf(v)
        return ops.logical_not(ops.logical_or(ops.isnan(v), ops.isinf(v)))

    return make_pointwise(body, x, promotion=Promotion.ALWAYS_BOOL)


def _round_decimals(ctx: LoweringContext, x: TensorValue, *, decimals: int = 0) -> Pointwise:
    """eager: round(x * 10^d) / 10^d, or round(x / 10^-d) * 10^-d for d < 0."""
    if not is_float(x.dtype):
        return identity(x)
    dtype = compute_dtype(x.dtype)
    scale = 10.0 ** abs(decimals)

    def body(ops: Any, v: Any) -> Any:
        ten = ops.constant(scale, dtype)
        if decimals < 0:
            return ops.mul(ops.round(ops.truediv(v, ten)), ten)
        return ops.truediv(ops.round(ops.mul(v, ten)), ten)

    return make_pointwise(body, x)


# -- binary arithmetic ------------------------------------------------------------


def _add(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar, alpha: Scalar = 1) -> Pointwise:
    return _add_sub(a, b, alpha, negate=False)


def _sub(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar, alpha: Scalar = 1) -> Pointwise:
    return _add_sub(a, b, alpha, negate=True)


def _rsub(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar, alpha: Scalar = 1) -> Pointwise:
    return _add_sub(b, a, alpha, negate=True)


def _add_sub(a: ValueOrScalar, b: ValueOrScalar, alpha: Scalar, negate: bool) -> Pointwise:
    """a + alpha*b or a - alpha*b; alpha takes no part in type promotion."""
    dtype, _ = elementwise_dtypes(a, b)

    def body(ops: Any, x: Any, y: Any) -> Any:
        if dtype == torch.bool:  # True + True is True
            return ops.logical_or(x, y)
        if alpha != 1:
            y = ops.mul(y, to_loader(alpha, dtype)(ops, []))
        return ops.sub(x, y) if negate else ops.add(x, y)

    return make_pointwise(body, a, b)


def _mul(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
    dtype, _ = elementwise_dtypes(a, b)
    if dtype == torch.bool:
        return make_pointwise(lambda ops, x, y: ops.logical_and(x, y), a, b)
    return make_pointwise(lambda ops, x, y: ops.mul(x, y), a, b)


def _div(
    ctx: LoweringContext,
    a: ValueOrScalar,
    b: ValueOrScalar,
    *,
    rounding_mode: str | None = None,
) -> Pointwise:
    if rounding_mode is None:
        return make_pointwise(
            lambda ops, x, y: ops.truediv(x, y), a, b, promotion=Promotion.INT_TO_FLOAT
        )
    dtype, _ = elementwise_dtypes(a, b)
    if rounding_mode == "floor":
        return make_pointwise(lambda ops, x, y: ops.floordiv(x, y), a, b)
    if rounding_mode == "trunc":
        return make_pointwise(lambda ops, x, y: trunc_div(ops, x, y, dtype), a, b)
    raise ValueError(f"div: unknown rounding_mode {rounding_mode!r}")


def _floor_divide(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
    return make_pointwise(lambda ops, x, y: ops.floordiv(x, y), a, b)


def trunc_div(ops: Any, a: Any, b: Any, dtype: torch.dtype) -> Any:
    """Division rounding toward zero. Integers: the floor quotient, plus one
    where the remainder is nonzero and the signs differ (x // 0 is 0)."""
    if is_float(dtype):
        return ops.trunc(ops.truediv(a, b))
    zero = ops.constant(0, dtype)
    quotient = ops.floordiv(a, b)
    inexact = ops.ne(ops.mod(a, b), zero)
    signs_differ = ops.ne(ops.lt(a, zero), ops.lt(b, zero))
    fix = ops.logical_and(inexact, signs_differ)
    return ops.where(fix, ops.add(quotient, ops.constant(1, dtype)), quotient)


def _remainder(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
    return make_pointwise(lambda ops, x, y: ops.mod(x, y), a, b)


def _fmod(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
    """Remainder with the dividend's sign: remainder() minus the divisor
    where the two disagree (int % 0 is 0, as ops.mod)."""
    dtype, _ = elementwise_dtypes(a, b)

    def body(ops: Any, x: Any, y: Any) -> Any:
        rem = ops.mod(x, y)
        zero = ops.constant(0, dtype)
        fix = ops.logical_and(ops.ne(rem, zero), ops.ne(ops.lt(rem, zero), ops.lt(x, zero)))
        return ops.where(fix, ops.sub(rem, y), rem)

    return make_pointwise(body, a, b)


# pow(x, c) for these exponents is computed by multiplication, as eager's
# pow_tensor_scalar_optimized_kernel does (bitwise equal to eager).
_POW_SPECIAL = (2, 3, 0.5, -0.5, -1, -2)


def _pow(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
    dtype, _ = elementwise_dtypes(a, b, promotion=Promotion.BOOL_TO_LONG)
    if is_tensor(a) and not is_tensor(b) and b in _POW_SPECIAL:
        if is_float(dtype) or b in (2, 3):
            exponent = b

            def special(ops: Any, x: Any, y: Any) -> Any:
                if exponent == 2:
                    return ops.mul(x, x)
                if exponent == 3:
                    return ops.mul(ops.mul(x, x), x)
                if exponent == 0.5:
                    return ops.sqrt(x)
                if exponent == -0.5:
                    return ops.rsqrt(x)
                if exponent == -1:
                    return ops.reciprocal(x)
                return ops.reciprocal(ops.mul(x, x))

            return make_pointwise(special, a, b, promotion=Promotion.BOOL_TO_LONG)
    return make_pointwise(lambda ops, x, y: ops.pow(x, y), a, b, promotion=Promotion.BOOL_TO_LONG)


def _atan2(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
    return make_pointwise(lambda ops, x, y: ops.atan2(x, y), a, b, promotion=Promotion.INT_TO_FLOAT)


def _maximum(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
    return make_pointwise(lambda ops, x, y: ops.maximum(x, y), a, b)


def _minimum(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
    return make_pointwise(lambda ops, x, y: ops.minimum(x, y), a, b)


def _fmax_fmin(take_max: bool) -> Callable[..., Pointwise]:
    """fmax/fmin ignore a NaN operand (NaN only when both are)."""

    def lower(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
        def body(ops: Any, x: Any, y: Any) -> Any:
            best = ops.maximum(x, y) if take_max else ops.minimum(x, y)
            return ops.where(ops.isnan(x), y, ops.where(ops.isnan(y), x, best))

        dtype, _ = elementwise_dtypes(a, b)
        if not is_float(dtype):
            return _maximum(ctx, a, b) if take_max else _minimum(ctx, a, b)
        return make_pointwise(body, a, b)

    return lower


def _clamp(
    ctx: LoweringContext,
    x: TensorValue,
    min: ValueOrScalar | None = None,  # noqa: A002 (aten's argument names)
    max: ValueOrScalar | None = None,  # noqa: A002
) -> Pointwise:
    """min(max(x, lo), hi): NaN in x or a bound propagates; lo > hi gives hi."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    args = [a for a in (x, min, max) if a is not None]
    has_min, has_max = min is not None, max is not None

    def body(ops: Any, v: Any, *bounds: Any) -> Any:
        k = 0
        if has_min:
            v = ops.maximum(v, bounds[k])
            k += 1
        if has_max:
            v = ops.minimum(v, bounds[k])
        return v

    return make_pointwise(body, *args)


def _clamp_min(ctx: LoweringContext, x: TensorValue, bound: ValueOrScalar) -> Pointwise:
    return _clamp(ctx, x, bound, None)


def _clamp_max(ctx: LoweringContext, x: TensorValue, bound: ValueOrScalar) -> Pointwise:
    return _clamp(ctx, x, None, bound)


# -- comparisons, logical and bitwise ----------------------------------------------

_COMPARISONS: dict[str, Body] = {
    "eq": lambda ops, x, y: ops.eq(x, y),
    "ne": lambda ops, x, y: ops.ne(x, y),
    "lt": lambda ops, x, y: ops.lt(x, y),
    "le": lambda ops, x, y: ops.le(x, y),
    "gt": lambda ops, x, y: ops.gt(x, y),
    "ge": lambda ops, x, y: ops.ge(x, y),
}

_LOGICAL: dict[str, Body] = {
    "logical_and": lambda ops, x, y: ops.logical_and(x, y),
    "logical_or": lambda ops, x, y: ops.logical_or(x, y),
    "logical_xor": lambda ops, x, y: ops.logical_xor(x, y),
}

_BITWISE: dict[str, Body] = {
    "bitwise_and": lambda ops, x, y: ops.bitwise_and(x, y),
    "bitwise_or": lambda ops, x, y: ops.bitwise_or(x, y),
    "bitwise_xor": lambda ops, x, y: ops.bitwise_xor(x, y),
}


def _binary(body: Body, promotion: Promotion = Promotion.DEFAULT) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
        return make_pointwise(body, a, b, promotion=promotion)

    return lower


def _logical(body: Body) -> Callable[..., Pointwise]:
    """Operands are converted to bool (nonzero, NaN included, is true)."""

    def lower(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
        return make_pointwise(body, a, b, dtype=torch.bool)

    return lower


def _logical_not(ctx: LoweringContext, x: TensorValue) -> Pointwise:
    return make_pointwise(lambda ops, v: ops.logical_not(v), x, dtype=torch.bool)


def _bitwise_not(ctx: LoweringContext, x: TensorValue) -> Pointwise:
    if x.dtype == torch.bool:
        return _logical_not(ctx, x)
    if not is_integer(x.dtype):
        raise TypeError(f"bitwise_not is only defined for integer and bool tensors, got {x.dtype}")
    return make_pointwise(lambda ops, v: ops.bitwise_not(v), x)


def _where(
    ctx: LoweringContext, cond: TensorValue, a: ValueOrScalar, b: ValueOrScalar
) -> Pointwise:
    """cond ? a : b over the broadcast of all three; dtype of result_type(a, b)."""
    compute, result = elementwise_dtypes(a, b)
    tensors = [t for t in (cond, a, b) if is_tensor(t)]
    size = broadcast_shapes(*[t.get_size() for t in tensors])  # type: ignore[union-attr]
    load_cond = to_loader(broadcast_to(cond, size), torch.bool)
    load_a = to_loader(broadcast_to(a, size) if is_tensor(a) else a, compute)  # type: ignore[arg-type]
    load_b = to_loader(broadcast_to(b, size) if is_tensor(b) else b, compute)  # type: ignore[arg-type]

    def inner_fn(ops: Any, index: Any) -> Any:
        value = ops.where(load_cond(ops, index), load_a(ops, index), load_b(ops, index))
        return value if result == compute else ops.to_dtype(value, result)

    return Pointwise(size, result, inner_fn)


def _masked_fill(
    ctx: LoweringContext, x: TensorValue, mask: TensorValue, value: ValueOrScalar
) -> Pointwise:
    """where(mask, value, x) in x's dtype (value is converted to it)."""
    if is_tensor(value):
        value = identity(value, x.dtype)  # type: ignore[arg-type]
    else:
        value = scalar_as(value, x.dtype)  # type: ignore[arg-type]
    filled = _where(ctx, mask, value, x)
    return filled if filled.dtype == x.dtype else identity(filled, x.dtype)


# -- activations -------------------------------------------------------------------


def _relu(ctx: LoweringContext, x: TensorValue) -> Pointwise:
    return make_pointwise(lambda ops, v, zero: ops.maximum(v, zero), x, 0)


def _gelu(ctx: LoweringContext, x: TensorValue, *, approximate: str = "none") -> Pointwise:
    """Eager's CPU formulas, operation for operation."""
    dtype = compute_dtype(x.dtype)

    def exact(ops: Any, v: Any) -> Any:
        # x * 0.5 * (1 + erf(x * M_SQRT1_2))
        c = lambda value: ops.constant(value, dtype)  # noqa: E731
        cdf = ops.add(c(1.0), ops.erf(ops.mul(v, c(math.sqrt(0.5)))))
        return ops.mul(ops.mul(v, c(0.5)), cdf)

    def tanh(ops: Any, v: Any) -> Any:
        # 0.5 * x * (1 + tanh(kBeta * (x + kKappa * x^3)))
        c = lambda value: ops.constant(value, dtype)  # noqa: E731
        beta = math.sqrt(2.0) * (2.0 / math.sqrt(math.pi)) * 0.5
        cube = ops.mul(ops.mul(v, v), v)
        inner = ops.mul(c(beta), ops.add(v, ops.mul(c(0.044715), cube)))
        return ops.mul(ops.mul(c(0.5), v), ops.add(c(1.0), ops.tanh(inner)))

    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: unknown approximate {approximate!r}")
    return make_pointwise(exact if approximate == "none" else tanh, x)


def _hardtanh(
    ctx: LoweringContext, x: TensorValue, min_val: Scalar = -1, max_val: Scalar = 1
) -> Pointwise:
    return make_pointwise(
        lambda ops, v, lo, hi: ops.minimum(ops.maximum(v, lo), hi),
        x,
        min_val,
        max_val,
        dtype=x.dtype,
    )


def _leaky_relu(ctx: LoweringContext, x: TensorValue, negative_slope: Scalar = 0.01) -> Pointwise:
    def body(ops: Any, v: Any, slope: Any, zero: Any) -> Any:
        return ops.where(ops.gt(v, zero), v, ops.mul(v, slope))

    return make_pointwise(body, x, negative_slope, 0, dtype=x.dtype)


def _elu(
    ctx: LoweringContext,
    x: TensorValue,
    alpha: Scalar = 1,
    scale: Scalar = 1,
    input_scale: Scalar = 1,
) -> Pointwise:
    """x > 0 ? x * scale : expm1(x * input_scale) * alpha * scale."""
    dtype = compute_dtype(x.dtype)
    negcoef, poscoef, negiptcoef = float(alpha) * float(scale), float(scale), float(input_scale)

    def body(ops: Any, v: Any) -> Any:
        c = lambda value: ops.constant(value, dtype)  # noqa: E731
        negative = ops.mul(ops.expm1(ops.mul(v, c(negiptcoef))), c(negcoef))
        return ops.where(ops.le(v, c(0.0)), negative, ops.mul(v, c(poscoef)))

    return make_pointwise(body, x)


# -- named math functions ([Note: math functions] in aot/ir/ops.py) ------------------

# Unary float functions: integer inputs compute in the default float dtype.
_MATH_UNARY: dict[Any, str] = {
    aten.asin.default: "asin",
    aten.acos.default: "acos",
    aten.asinh.default: "asinh",
    aten.acosh.default: "acosh",
    aten.atanh.default: "atanh",
    aten.erfc.default: "erfc",
    aten.erfinv.default: "erfinv",
    aten.lgamma.default: "lgamma",
    aten.digamma.default: "digamma",
    aten.i0.default: "i0",
    aten.special_i0e.default: "i0e",
    aten.special_i1.default: "i1",
    aten.special_i1e.default: "i1e",
    aten.special_ndtri.default: "ndtri",
    aten.special_erfcx.default: "erfcx",
    aten.special_bessel_j0.default: "bessel_j0",
    aten.special_bessel_j1.default: "bessel_j1",
    aten.special_bessel_y0.default: "bessel_y0",
    aten.special_bessel_y1.default: "bessel_y1",
    aten.special_modified_bessel_i0.default: "i0",
    aten.special_modified_bessel_i1.default: "i1",
    aten.special_modified_bessel_k0.default: "modified_bessel_k0",
    aten.special_modified_bessel_k1.default: "modified_bessel_k1",
    aten.special_scaled_modified_bessel_k0.default: "scaled_modified_bessel_k0",
    aten.special_scaled_modified_bessel_k1.default: "scaled_modified_bessel_k1",
    aten.special_spherical_bessel_j0.default: "spherical_bessel_j0",
    aten.special_airy_ai.default: "airy_ai",
}

# Binary float functions (tensor or scalar operands, promoted together).
_MATH_BINARY: dict[str, str] = {
    "copysign": "copysign",
    "hypot": "hypot",
    "igamma": "igamma",
    "igammac": "igammac",
    "special_zeta": "zeta",
    **{f"special_{name}": name for name in ORTHOGONAL_POLYNOMIALS},
}


def _math_unary(name: str) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        return make_pointwise(
            lambda ops, v: ops.math_fn(name, v), x, promotion=Promotion.INT_TO_FLOAT
        )

    return lower


def _math_binary(name: str) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, a: ValueOrScalar, b: ValueOrScalar) -> Pointwise:
        body = lambda ops, x, y: ops.math_fn(name, x, y)  # noqa: E731
        return make_pointwise(body, a, b, promotion=Promotion.INT_TO_FLOAT)

    return lower


def _polygamma(ctx: LoweringContext, n: int, x: TensorValue) -> Pointwise:
    """n arrives as a float operand (math functions take one dtype)."""
    dtype, _ = elementwise_dtypes(x, promotion=Promotion.INT_TO_FLOAT)

    def body(ops: Any, v: Any) -> Any:
        return ops.math_fn("polygamma", ops.constant(float(n), dtype), v)

    return make_pointwise(body, x, promotion=Promotion.INT_TO_FLOAT)


def _nextafter(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Pointwise:
    """Steps of the result dtype: a bfloat16 result moves to the next bfloat16."""
    _, result = elementwise_dtypes(a, b)
    if result == torch.float16:
        raise NotImplementedError("nextafter: aotc has no float16 step")
    name = "nextafter_bf16" if result == torch.bfloat16 else "nextafter"
    return make_pointwise(lambda ops, x, y: ops.math_fn(name, x, y), a, b)


def _ldexp(ctx: LoweringContext, x: TensorValue, other: TensorValue) -> Pointwise:
    """x * 2^other, rounded once to the promoted dtype (as eager)."""
    dtype, _ = elementwise_dtypes(x, other, promotion=Promotion.INT_TO_FLOAT)
    body = lambda ops, v, e: ops.mul(v, ops.pow(ops.constant(2.0, dtype), e))  # noqa: E731
    return make_pointwise(body, x, other, promotion=Promotion.INT_TO_FLOAT)


def _signbit(ctx: LoweringContext, x: TensorValue) -> Pointwise:
    """Sign bit set: true for -0.0 and negative NaNs (copysign reads the bit)."""
    dtype = compute_dtype(x.dtype)

    def body(ops: Any, v: Any) -> Any:
        if dtype == torch.bool:
            return ops.constant(False, torch.bool)
        if not is_float(dtype):
            return ops.lt(v, ops.constant(0, dtype))
        one, zero = ops.constant(1.0, dtype), ops.constant(0.0, dtype)
        return ops.lt(ops.math_fn("copysign", one, v), zero)

    return make_pointwise(body, x, promotion=Promotion.ALWAYS_BOOL)


def _frexp(ctx: LoweringContext, x: TensorValue) -> tuple[Pointwise, Pointwise]:
    """(mantissa in x's dtype, int32 exponent)."""
    if not is_float(x.dtype):
        raise TypeError(f"frexp: expected a floating-point input, got {x.dtype}")
    mantissa = make_pointwise(lambda ops, v: ops.math_fn("frexp_mantissa", v), x)
    exponent = make_pointwise(
        lambda ops, v: ops.math_fn("frexp_exponent", v), x, out_dtype=torch.int32
    )
    return mantissa, exponent


def _angle(ctx: LoweringContext, x: TensorValue) -> Pointwise:
    """Real inputs: pi for negatives, 0 otherwise, NaN kept."""
    dtype, _ = elementwise_dtypes(x, promotion=Promotion.INT_TO_FLOAT)

    def body(ops: Any, v: Any) -> Any:
        zero = ops.constant(0.0, dtype)
        negative = ops.where(ops.lt(v, zero), ops.constant(math.pi, dtype), zero)
        return ops.where(ops.isnan(v), v, negative)

    return make_pointwise(body, x, promotion=Promotion.INT_TO_FLOAT)


def _functional_overloads(packet: Any) -> list[Any]:
    """The overloads of |packet| that return a new tensor: Tensor and Scalar
    operand variants, not out= nor the Python-number ones (copysign.float)."""
    overloads = [getattr(packet, name) for name in packet.overloads()]
    return [
        o
        for o in overloads
        if not o._schema.is_mutable and str(o._schema.returns[0].type) == "Tensor"
    ]


def _register_math(registry: LoweringRegistry) -> None:
    for target, name in _MATH_UNARY.items():
        registry.register(target)(_math_unary(name))
    for op, name in _MATH_BINARY.items():
        registry.register(*_functional_overloads(getattr(aten, op)))(_math_binary(name))
    registry.register(aten.polygamma.default)(_polygamma)
    registry.register(aten.nextafter.default)(_nextafter)
    registry.register(aten.ldexp.Tensor)(_ldexp)
    registry.register(aten.signbit.default)(_signbit)
    registry.register(aten.frexp.Tensor)(_frexp)
    registry.register(aten.angle.default)(_angle)


# -- conversions and copies -----------------------------------------------------------


def _to_copy(ctx: LoweringContext, x: TensorValue, **kwargs: Any) -> Pointwise:
    """Layout, device and memory format are ignored: the frontend retargets
    devices and every computed value is contiguous."""
    return identity(x, kwargs.get("dtype"))


def _copy(
    ctx: LoweringContext, dst: TensorValue, src: TensorValue, non_blocking: bool = False
) -> Pointwise:
    return identity(broadcast_to(src, dst.get_size()), dst.dtype)


def _fill(ctx: LoweringContext, x: TensorValue, value: ValueOrScalar) -> Pointwise:
    if is_tensor(value):
        source = broadcast_to(value, x.get_size())  # type: ignore[arg-type]
        return identity(source, x.dtype)
    constant = scalar_as(value, x.dtype)  # type: ignore[arg-type]
    load = to_loader(constant, x.dtype)
    return Pointwise(x.get_size(), x.dtype, load)


def register(registry: LoweringRegistry) -> None:
    for target, body in _FLOAT_UNARY.items():
        registry.register(target)(_float_unary(body))
    for target, body in _ROUNDING_UNARY.items():
        registry.register(target)(_rounding_unary(body))
    for target, math_body in _FLOAT_MATH.items():
        registry.register(target)(_float_math(math_body))
    registry.register(aten.neg.default)(_unary_keep(lambda ops, x: ops.neg(x)))
    registry.register(aten.abs.default)(_unary_keep(lambda ops, x: ops.abs(x)))
    registry.register(aten.sign.default)(_unary_keep(lambda ops, x: ops.sign(x)))
    registry.register(aten.round.decimals)(_round_decimals)
    for name in ("isnan", "isinf", "isfinite"):
        registry.register(getattr(aten, name).default)(_classify_op(name))

    registry.register(aten.add.Tensor, aten.add.Scalar)(_add)
    registry.register(aten.sub.Tensor, aten.sub.Scalar)(_sub)
    registry.register(aten.rsub.Tensor, aten.rsub.Scalar)(_rsub)
    registry.register(aten.mul.Tensor, aten.mul.Scalar)(_mul)
    registry.register(aten.div.Tensor, aten.div.Scalar)(_div)
    registry.register(aten.div.Tensor_mode, aten.div.Scalar_mode)(_div)
    registry.register(aten.floor_divide.default, aten.floor_divide.Scalar)(_floor_divide)
    registry.register(aten.remainder.Tensor, aten.remainder.Scalar, aten.remainder.Scalar_Tensor)(
        _remainder
    )
    registry.register(aten.fmod.Tensor, aten.fmod.Scalar)(_fmod)
    registry.register(aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar, aten.pow.Scalar)(_pow)
    registry.register(aten.atan2.default)(_atan2)
    registry.register(aten.maximum.default)(_maximum)
    registry.register(aten.minimum.default)(_minimum)
    registry.register(aten.fmax.default)(_fmax_fmin(True))
    registry.register(aten.fmin.default)(_fmax_fmin(False))
    registry.register(aten.clamp.default, aten.clamp.Tensor)(_clamp)
    registry.register(aten.clamp_min.default, aten.clamp_min.Tensor)(_clamp_min)
    registry.register(aten.clamp_max.default, aten.clamp_max.Tensor)(_clamp_max)

    for name, body in _COMPARISONS.items():
        packet = getattr(aten, name)
        registry.register(packet.Tensor, packet.Scalar)(_binary(body, Promotion.ALWAYS_BOOL))
    for name, body in _LOGICAL.items():
        registry.register(getattr(aten, name).default)(_logical(body))
    registry.register(aten.logical_not.default)(_logical_not)
    for name, body in _BITWISE.items():
        packet = getattr(aten, name)
        registry.register(packet.Tensor, packet.Scalar, packet.Scalar_Tensor)(_binary(body))
    registry.register(aten.bitwise_not.default)(_bitwise_not)
    registry.register(
        aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar
    )(_where)
    registry.register(aten.masked_fill.Scalar, aten.masked_fill.Tensor)(_masked_fill)

    registry.register(aten.relu.default)(_relu)
    registry.register(aten.gelu.default)(_gelu)
    registry.register(aten.hardtanh.default)(_hardtanh)
    registry.register(aten.leaky_relu.default)(_leaky_relu)
    registry.register(aten.elu.default)(_elu)
    _register_math(registry)

    registry.register(aten._to_copy.default)(_to_copy)
    # clone is views.py's (an alias: values are immutable in lowering).
    registry.register(aten.copy.default)(_copy)
    registry.register(aten.fill.Scalar, aten.fill.Tensor)(_fill)


def _unary_keep(body: Body) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        return make_pointwise(body, x)

    return lower


def _classify_op(name: str) -> Callable[..., Pointwise]:
    def lower(ctx: LoweringContext, x: TensorValue) -> Pointwise:
        return _classify(ctx, x, name)

    return lower
