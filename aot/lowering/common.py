"""Helpers shared by the lowering modules: broadcasting, type promotion,
loaders with dtype conversion, and make_pointwise.

[Note: pointwise dtypes] A pointwise lowering picks three dtypes, as eager's
TensorIterator does:
- the promoted dtype: torch.result_type of the tensor and scalar arguments
  (promote_types), adjusted by the op's Promotion kind (INT_TO_FLOAT for
  div/exp/sqrt..., ALWAYS_BOOL for comparisons, BOOL_TO_LONG for pow);
- the compute dtype: the promoted dtype, except float32 for bfloat16 and
  float16 ("opmath", compute_dtype): every operand is converted to it after
  its load, and Python scalars become float32 constants (eager keeps a
  scalar in opmath precision too);
- the result dtype: the promoted dtype (bool for ALWAYS_BOOL); the body's
  value is converted to it at the end, so a bf16 op rounds once per op,
  exactly like eager.
The body |fn| therefore only ever sees operands of one dtype (ops.py's
contract: handlers never promote).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

import sympy
import torch

from ..ir.nodes import Buffer, GenericView, Loader, Pointwise, ReinterpretView, TensorValue

# A Python scalar argument of an aten op; sympy expressions are symbolic ints
# (dynamic sizes used as values).
Scalar = bool | int | float | sympy.Expr
ValueOrScalar = TensorValue | Scalar

TENSOR_TYPES = (Buffer, ReinterpretView, Pointwise, GenericView)


class Promotion(enum.Enum):
    """How an op's result dtype follows from the promoted dtype (torch's
    ELEMENTWISE_TYPE_PROMOTION_KIND)."""

    DEFAULT = "default"  # result_type of the arguments
    INT_TO_FLOAT = "int_to_float"  # integer/bool results become the default float
    ALWAYS_BOOL = "always_bool"  # compute in the promoted dtype, return bool
    BOOL_TO_LONG = "bool_to_long"  # bool results become int64


def is_tensor(value: Any) -> bool:
    return isinstance(value, TENSOR_TYPES)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float32 for bfloat16/float16."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def is_integer(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


# -- broadcasting -------------------------------------------------------------


def _broadcast_dim(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    if (a - b).simplify() == 0:
        return a
    raise ValueError(f"cannot broadcast sizes {a} and {b}")


def broadcast_shapes(*sizes: Sequence[sympy.Expr]) -> list[sympy.Expr]:
    """The broadcast of |sizes| (right-aligned, size-1 dims stretch), as
    torch.broadcast_shapes. Symbolic dims must be equal (export guarantees it:
    dynamic dims are never 1)."""
    ndim = max((len(s) for s in sizes), default=0)
    out: list[sympy.Expr] = [sympy.Integer(1)] * ndim
    for size in sizes:
        for k, dim in enumerate(size):
            pos = ndim - len(size) + k
            out[pos] = _broadcast_dim(out[pos], sympy.sympify(dim))
    return out


def broadcast_to(value: TensorValue, size: Sequence[sympy.Expr]) -> TensorValue:
    """|value| read at every index of |size| (expand semantics): a GenericView
    that drops leading dims and pins stretched size-1 dims to 0. Returns
    |value| itself when the sizes already agree."""
    size = [sympy.sympify(s) for s in size]
    own = value.get_size()
    if len(own) == len(size) and all(a == b for a, b in zip(own, size, strict=True)):
        return value
    if len(own) > len(size):
        raise ValueError(f"cannot broadcast {own} to {size}")
    lead = len(size) - len(own)
    stretched = []
    for k, dim in enumerate(own):
        target = size[lead + k]
        if dim == target:
            stretched.append(False)
        elif dim == 1:
            stretched.append(True)
        else:
            raise ValueError(f"cannot broadcast {own} to {size}")

    def reindex(index: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        return [
            sympy.Integer(0) if stretch else i
            for i, stretch in zip(index[lead:], stretched, strict=True)
        ]

    return GenericView(value, size, reindex)


# -- type promotion -------------------------------------------------------------


def _scalar_dtype(value: Scalar) -> torch.dtype:
    """The dtype a wrapped Python scalar contributes (before defaulting)."""
    if isinstance(value, bool | sympy.logic.boolalg.BooleanAtom):
        return torch.bool
    if isinstance(value, int):
        return torch.int64
    if isinstance(value, float):
        return torch.get_default_dtype()
    if isinstance(value, sympy.Expr):
        return torch.int64 if value.is_integer else torch.get_default_dtype()
    raise TypeError(f"not a scalar: {value!r}")


def _category(dtype: torch.dtype | None) -> int:
    if dtype is None:
        return -1
    if dtype == torch.bool:
        return 0
    if dtype.is_complex:
        return 3
    if dtype.is_floating_point:
        return 2
    return 1


def _promote(a: torch.dtype | None, b: torch.dtype) -> torch.dtype:
    return b if a is None else torch.promote_types(a, b)


def _combine(higher: torch.dtype | None, lower: torch.dtype | None) -> torch.dtype | None:
    """c10's combine_categories: a lower-priority group only matters when it is
    of a higher category (a float scalar makes an int tensor float, but an
    int64 scalar leaves an int8 tensor int8)."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if _category(higher) >= 2 and _category(lower) <= 2:
        return higher
    if higher == torch.bool or _category(lower) >= 2:
        return torch.promote_types(higher, lower)
    return higher


def promote_types(*args: ValueOrScalar | None) -> torch.dtype:
    """torch.result_type over tensors and Python scalars (None skipped):
    dimensioned tensors take priority over 0-d tensors, which take priority
    over scalars, unless a lower group is of a higher category."""
    dim_result: torch.dtype | None = None
    zero_result: torch.dtype | None = None
    scalar_result: torch.dtype | None = None
    for arg in args:
        if arg is None:
            continue
        if is_tensor(arg):
            if len(arg.get_size()) > 0:  # type: ignore[union-attr]
                dim_result = _promote(dim_result, arg.dtype)  # type: ignore[union-attr]
            else:
                zero_result = _promote(zero_result, arg.dtype)  # type: ignore[union-attr]
        else:
            scalar_result = _promote(scalar_result, _scalar_dtype(arg))  # type: ignore[arg-type]
    result = _combine(dim_result, _combine(zero_result, scalar_result))
    if result is None:
        raise ValueError("promote_types needs at least one argument")
    return result


def elementwise_dtypes(
    *args: ValueOrScalar | None, promotion: Promotion = Promotion.DEFAULT
) -> tuple[torch.dtype, torch.dtype]:
    """(compute dtype, result dtype) of a pointwise op over |args| (see
    [Note: pointwise dtypes])."""
    promoted = promote_types(*args)
    if promotion is Promotion.INT_TO_FLOAT and not is_float(promoted):
        promoted = torch.get_default_dtype()
    elif promotion is Promotion.BOOL_TO_LONG and promoted == torch.bool:
        promoted = torch.int64
    result = torch.bool if promotion is Promotion.ALWAYS_BOOL else promoted
    return compute_dtype(promoted), result


# -- loaders ----------------------------------------------------------------------


def scalar_as(value: Scalar, dtype: torch.dtype) -> Scalar:
    """A Python scalar converted to |dtype|'s kind (float->int truncates), as
    eager converts a scalar stored into a tensor of |dtype|. Symbolic
    expressions are left as they are (to_loader casts them)."""
    if isinstance(value, sympy.Expr) and not value.is_number:
        return value
    if dtype == torch.bool:
        return bool(value)
    if is_float(dtype):
        return float(value)
    return int(value)


def to_loader(value: ValueOrScalar, dtype: torch.dtype) -> Loader:
    """A loader of |value| whose elements come out in |dtype| (converted after
    the load). A Python scalar becomes ops.constant; a symbolic int becomes
    ops.index_expr. Pass a compute dtype (compute_dtype) for arithmetic."""
    if is_tensor(value):
        inner = value.make_loader()  # type: ignore[union-attr]
        if value.dtype == dtype:  # type: ignore[union-attr]
            return inner

        def load_as(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return ops.to_dtype(inner(ops, index), dtype)

        return load_as
    if isinstance(value, sympy.Expr) and not value.is_number:
        expr = value

        def load_expr(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return ops.index_expr(expr, dtype)

        return load_expr
    if isinstance(value, sympy.logic.boolalg.BooleanAtom):
        number: bool | int | float = bool(value)
    elif isinstance(value, sympy.Expr):
        number = int(value) if value.is_integer else float(value)
    else:
        number = value  # type: ignore[assignment]
    constant = scalar_as(number, dtype)

    def load_constant(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        return ops.constant(constant, dtype)

    return load_constant


# -- pointwise ------------------------------------------------------------------------


def make_pointwise(
    fn: Callable[..., Any],
    *args: ValueOrScalar,
    promotion: Promotion = Promotion.DEFAULT,
    dtype: torch.dtype | None = None,
    out_dtype: torch.dtype | None = None,
) -> Pointwise:
    """A Pointwise computing fn(ops, *values) over the broadcast of |args|.

    Tensors are broadcast together; every argument (tensor or Python scalar)
    arrives in fn converted to the compute dtype. |dtype| overrides the
    promoted dtype (ops whose result takes its first input's dtype, e.g.
    masked_fill); |out_dtype| overrides the result dtype. fn returns a value in
    the compute dtype (bool for ALWAYS_BOOL), converted to the result dtype at
    the end. See [Note: pointwise dtypes]."""
    if dtype is None:
        compute, result = elementwise_dtypes(*args, promotion=promotion)
    else:
        compute = compute_dtype(dtype)
        result = torch.bool if promotion is Promotion.ALWAYS_BOOL else dtype
    returns = torch.bool if promotion is Promotion.ALWAYS_BOOL else compute
    out = out_dtype or result
    tensors = [a for a in args if is_tensor(a)]
    size = broadcast_shapes(*[t.get_size() for t in tensors])  # type: ignore[union-attr]
    loaders = [
        to_loader(broadcast_to(a, size) if is_tensor(a) else a, compute)  # type: ignore[arg-type]
        for a in args
    ]

    def inner_fn(ops: Any, index: Sequence[sympy.Expr]) -> Any:
        value = fn(ops, *[load(ops, index) for load in loaders])
        return value if out == returns else ops.to_dtype(value, out)

    return Pointwise(size, out, inner_fn)


def identity(value: TensorValue, dtype: torch.dtype | None = None) -> Pointwise:
    """A Pointwise reading |value| (converted to |dtype| if given): clone,
    _to_copy, copy."""
    dtype = dtype or value.dtype
    if compute_dtype(value.dtype) != value.dtype and not is_float(dtype):
        # bf16 -> int goes through float32, as eager converts.
        via = to_loader(value, torch.float32)

        def load(ops: Any, index: Sequence[sympy.Expr]) -> Any:
            return ops.to_dtype(via(ops, index), dtype)

        return Pointwise(value.get_size(), dtype, load)
    return Pointwise(value.get_size(), dtype, to_loader(value, dtype))


def normalize_dim(dim: int, ndim: int) -> int:
    """|dim| in [0, ndim) (negative dims wrap; a 0-d tensor accepts 0 and -1)."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"dimension {dim} out of range for a {ndim}-d tensor")
    return dim % bound


def normalize_dims(dims: int | Sequence[int] | None, ndim: int) -> list[int]:
    """Sorted distinct dims; None or [] means every dim (torch's reductions)."""
    if dims is None:
        return list(range(ndim))
    if isinstance(dims, int):
        dims = [dims]
    if len(dims) == 0:
        return list(range(ndim))
    out = sorted({normalize_dim(d, ndim) for d in dims})
    return [d for d in out if d < ndim]
