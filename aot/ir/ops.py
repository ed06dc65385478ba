"""The ops handler: the contract between loop bodies and backends.

Loop bodies (Pointwise/Reduction inner functions) are backend-neutral: they
call methods of a handler passed in explicitly, ``fn(ops, index)``. The C++
printer, the Triton printer, dtype propagation, byte counting and PrintHandler
(below, for golden tests) all implement this one Protocol. Every op is
declared here once; a handler that lacks an op fails loudly (no __getattr__
fallback).

Values are opaque to the body (a backend's expression, a dtype, a string).
Dtypes: lowering makes both operands of a binary op the same dtype before the
call (explicit to_dtype), so handlers never promote. bfloat16/float16 values
are computed in float32: lowering upcasts after load and downcasts before
store, as eager does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import sympy
import torch

V = TypeVar("V")


class OpsHandler(Protocol[V]):
    # -- memory and constants ------------------------------------------------
    def load(self, name: str, index: sympy.Expr) -> V:
        """Element |index| (flat, in elements) of buffer |name|."""
        ...

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> V:
        """A scalar literal (inf and nan allowed for floats)."""
        ...

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> V:
        """An index expression as a value (e.g. arange), cast to |dtype|."""
        ...

    def indirect_indexing(
        self, value: V, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        """Turns an integer value into an index symbol usable in load() indices.
        Negative values wrap once (like torch's advanced indexing) when |wrap|;
        with wrap=False a negative value is out of range (embedding, gather and
        index_select refuse them in eager). Out of [0, size) is a run-time
        error naming |name| (a kernel's debug handle and input), never a read
        out of bounds."""
        ...

    def to_dtype(self, value: V, dtype: torch.dtype) -> V:
        """Converts, with torch's semantics (float->int truncates)."""
        ...

    def where(self, cond: V, a: V, b: V) -> V: ...

    def masked(self, mask: V, body: Callable[[], V], other: float | int | bool) -> V:
        """body() where mask is true, else |other|; loads inside body are not
        performed where mask is false (pad, cat, pooling borders)."""
        ...

    # -- unary math (float) ----------------------------------------------------
    def neg(self, x: V) -> V: ...
    def abs(self, x: V) -> V: ...
    def exp(self, x: V) -> V: ...
    def expm1(self, x: V) -> V: ...
    def log(self, x: V) -> V: ...
    def log1p(self, x: V) -> V: ...
    def sqrt(self, x: V) -> V: ...
    def rsqrt(self, x: V) -> V: ...
    def reciprocal(self, x: V) -> V: ...
    def sin(self, x: V) -> V: ...
    def cos(self, x: V) -> V: ...
    def tan(self, x: V) -> V: ...
    def tanh(self, x: V) -> V: ...
    def sigmoid(self, x: V) -> V: ...
    def erf(self, x: V) -> V: ...
    def floor(self, x: V) -> V: ...
    def ceil(self, x: V) -> V: ...
    def trunc(self, x: V) -> V: ...
    def round(self, x: V) -> V:
        """Round half to even, like torch.round."""
        ...

    def sign(self, x: V) -> V: ...
    def isnan(self, x: V) -> V: ...
    def isinf(self, x: V) -> V: ...
    def logical_not(self, x: V) -> V: ...
    def bitwise_not(self, x: V) -> V: ...

    # -- binary ----------------------------------------------------------------
    def add(self, a: V, b: V) -> V: ...
    def sub(self, a: V, b: V) -> V: ...
    def mul(self, a: V, b: V) -> V: ...
    def truediv(self, a: V, b: V) -> V: ...
    def floordiv(self, a: V, b: V) -> V:
        """Floor division; for integers, division by zero yields 0 (never SIGFPE)."""
        ...

    def mod(self, a: V, b: V) -> V:
        """Remainder with the divisor's sign (torch.remainder); int % 0 yields 0."""
        ...

    def pow(self, a: V, b: V) -> V: ...
    def atan2(self, a: V, b: V) -> V: ...
    def maximum(self, a: V, b: V) -> V:
        """Propagates NaN like torch.maximum."""
        ...

    def minimum(self, a: V, b: V) -> V: ...
    def eq(self, a: V, b: V) -> V: ...
    def ne(self, a: V, b: V) -> V: ...
    def lt(self, a: V, b: V) -> V: ...
    def le(self, a: V, b: V) -> V: ...
    def gt(self, a: V, b: V) -> V: ...
    def ge(self, a: V, b: V) -> V: ...
    def logical_and(self, a: V, b: V) -> V: ...
    def logical_or(self, a: V, b: V) -> V: ...
    def logical_xor(self, a: V, b: V) -> V: ...
    def bitwise_and(self, a: V, b: V) -> V: ...
    def bitwise_or(self, a: V, b: V) -> V: ...
    def bitwise_xor(self, a: V, b: V) -> V: ...

    # -- named math functions ------------------------------------------------------
    def math_fn(self, name: str, *args: V) -> V:
        """The scalar function MATH_FUNCTIONS[|name|] (see there) of float
        operands of one dtype (lowering converts integers and upcasts
        bf16/fp16); the result has that dtype."""
        ...


# [Note: math functions] Functions of float scalars that a backend takes from
# its math library (libm, CUDA's libdevice) or its own helpers
# (aotc_cpu_special.h), name -> arity. One op with a table instead of one
# Protocol entry each: they share one shape (floats in, a float out, no
# dtype rules of their own), and each handler maps a name to a function.
# Argument order follows the aten op; integer-valued arguments (the n of
# polygamma and of the orthogonal polynomials) arrive as floats and the
# function truncates them, as eager does.
# The orthogonal polynomial families p_n(x) (torch.special.*_polynomial_*).
ORTHOGONAL_POLYNOMIALS = (
    "chebyshev_polynomial_t",
    "chebyshev_polynomial_u",
    "chebyshev_polynomial_v",
    "chebyshev_polynomial_w",
    "shifted_chebyshev_polynomial_t",
    "shifted_chebyshev_polynomial_u",
    "shifted_chebyshev_polynomial_v",
    "shifted_chebyshev_polynomial_w",
    "hermite_polynomial_h",
    "hermite_polynomial_he",
    "laguerre_polynomial_l",
    "legendre_polynomial_p",
)

MATH_FUNCTIONS: dict[str, int] = {
    # inverse trigonometric and hyperbolic
    **dict.fromkeys(("asin", "acos", "asinh", "acosh", "atanh"), 1),
    # floating-point manipulation: frexp's mantissa and exponent (a float of
    # an integer value); nextafter_bf16 steps to the next bfloat16
    **dict.fromkeys(("frexp_mantissa", "frexp_exponent"), 1),
    **dict.fromkeys(("copysign", "hypot", "nextafter", "nextafter_bf16"), 2),
    # error function and gamma family
    **dict.fromkeys(("erfc", "erfinv", "erfcx", "ndtri", "lgamma", "digamma"), 1),
    **dict.fromkeys(("polygamma", "zeta", "igamma", "igammac"), 2),
    # Bessel and Airy functions (i0/i1 are modified Bessel functions, *e
    # scaled by exp(-|x|); scaled_modified_bessel_k* by exp(x))
    **dict.fromkeys(
        (
            "i0",
            "i0e",
            "i1",
            "i1e",
            "bessel_j0",
            "bessel_j1",
            "bessel_y0",
            "bessel_y1",
            "modified_bessel_k0",
            "modified_bessel_k1",
            "scaled_modified_bessel_k0",
            "scaled_modified_bessel_k1",
            "spherical_bessel_j0",
            "airy_ai",
        ),
        1,
    ),
    # orthogonal polynomials p_n(x): arguments (x, n)
    **dict.fromkeys(ORTHOGONAL_POLYNOMIALS, 2),
}


# The op names of the Protocol, for handlers that check their coverage.
OP_NAMES: tuple[str, ...] = tuple(
    name
    for name in vars(OpsHandler)
    if not name.startswith("_") and callable(vars(OpsHandler)[name])
)


class PrintHandler(Generic[V]):
    """Renders a body as nested calls, e.g. ``add(load(buf0, i0), constant(1.0))``.
    For golden tests of lowering: the printed form is what a body computes."""

    def __init__(self) -> None:
        self._indirect = 0

    def load(self, name: str, index: sympy.Expr) -> str:
        return f"load({name}, {index})"

    def constant(self, value: float | int | bool, dtype: torch.dtype) -> str:
        return f"constant({value!r}, {str(dtype).removeprefix('torch.')})"

    def index_expr(self, expr: sympy.Expr, dtype: torch.dtype) -> str:
        return f"index_expr({expr}, {str(dtype).removeprefix('torch.')})"

    def indirect_indexing(
        self, value: str, size: sympy.Expr, name: str, wrap: bool = True
    ) -> sympy.Symbol:
        symbol = sympy.Symbol(f"ind{self._indirect}", integer=True, nonnegative=True)
        self._indirect += 1
        return symbol

    def to_dtype(self, value: str, dtype: torch.dtype) -> str:
        return f"to_dtype({value}, {str(dtype).removeprefix('torch.')})"

    def masked(self, mask: str, body: Callable[[], str], other: float | int | bool) -> str:
        return f"masked({mask}, {body()}, {other!r})"

    def where(self, cond: str, a: str, b: str) -> str:
        return f"where({cond}, {a}, {b})"

    def math_fn(self, name: str, *args: str) -> str:
        return f"{name}({', '.join(str(a) for a in args)})"


def _printer(name: str) -> Callable[..., str]:
    def op(self: PrintHandler, *args: str) -> str:
        return f"{name}({', '.join(str(a) for a in args)})"

    op.__name__ = name
    return op


for _name in OP_NAMES:
    if not hasattr(PrintHandler, _name):
        setattr(PrintHandler, _name, _printer(_name))
