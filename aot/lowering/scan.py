"""Lowerings of the scan family to ExternKernel nodes: cumsum, cumprod,
logcumsumexp, cummax and cummin along one dim.

[Note: scan lowering] Each op becomes one ExternKernel of the op's name
whose only input is the realized operand (buffers and strided views are
read in place, so a transposed input costs no copy) and whose params hold
the scan dim, normalised to [0, rank) (a 0-d input accepts 0 and -1 and is
scanned as one element). Result dtypes follow eager:
- cumsum/cumprod: |dtype| when given, else int64 for integer and bool inputs,
  else the input's dtype. The kernel converts each element to the result
  dtype before accumulating (eager scans ``self.to(dtype)``).
- logcumsumexp: floating inputs only (eager refuses integers too).
- cummax/cummin: (values in the input's dtype, int64 indices).
Accumulation, NaN and tie rules are the kernel's: [Note: scan kernel
numerics] in aot/codegen/cpp/include/aotc_cpu_scan.h; operands per kind are
listed in aot/codegen/cpp/extern_scan.py. float16 has no kernel element type
and raises NotImplementedError.
"""

from __future__ import annotations

import torch

from ..ir.nodes import Buffer, ReinterpretView, TensorValue
from .common import is_float, normalize_dim
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten

# Element types the scan kernels take (the ctypes of extern_calls).
SCAN_DTYPES = (
    torch.float32,
    torch.float64,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)
FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.cumsum.default)(lower_cumsum)
    registry.register(aten.cumprod.default)(lower_cumprod)
    registry.register(aten.logcumsumexp.default)(lower_logcumsumexp)
    registry.register(aten.cummax.default)(lower_cummax)
    registry.register(aten.cummin.default)(lower_cummin)


def _operand(
    op: str, ctx: LoweringContext, x: TensorValue, dim: int
) -> tuple[Buffer | ReinterpretView, int]:
    """(x realized, dim normalised); refuses dtypes without a kernel."""
    if x.dtype not in SCAN_DTYPES:
        raise NotImplementedError(f"{op}: aotc's scan kernels do not take {x.dtype} inputs")
    return ctx.realize(x), normalize_dim(int(dim), len(x.get_size()))


def _accumulate(
    op: str, ctx: LoweringContext, x: TensorValue, dim: int, dtype: torch.dtype | None
) -> Buffer:
    rx, d = _operand(op, ctx, x, dim)
    if dtype is None:
        dtype = x.dtype if is_float(x.dtype) else torch.int64
    if dtype not in SCAN_DTYPES or dtype == torch.bool:
        raise NotImplementedError(f"{op}: aotc's scan kernels do not produce {dtype}")
    (out,) = ctx.extern(op, [rx], [(rx.get_size(), dtype)], {"dim": d})
    return out


def lower_cumsum(
    ctx: LoweringContext, x: TensorValue, dim: int, *, dtype: torch.dtype | None = None
) -> Buffer:
    return _accumulate("cumsum", ctx, x, dim, dtype)


def lower_cumprod(
    ctx: LoweringContext, x: TensorValue, dim: int, *, dtype: torch.dtype | None = None
) -> Buffer:
    return _accumulate("cumprod", ctx, x, dim, dtype)


def lower_logcumsumexp(ctx: LoweringContext, x: TensorValue, dim: int) -> Buffer:
    if x.dtype not in FLOAT_DTYPES:
        raise NotImplementedError(
            f"logcumsumexp: aotc's scan kernels take float32, float64 or bfloat16, got {x.dtype}"
        )
    rx, d = _operand("logcumsumexp", ctx, x, dim)
    (out,) = ctx.extern("logcumsumexp", [rx], [(rx.get_size(), rx.dtype)], {"dim": d})
    return out


def _extreme(op: str, ctx: LoweringContext, x: TensorValue, dim: int) -> tuple[Buffer, Buffer]:
    rx, d = _operand(op, ctx, x, dim)
    size = rx.get_size()
    values, indices = ctx.extern(op, [rx], [(size, rx.dtype), (size, torch.int64)], {"dim": d})
    return values, indices


def lower_cummax(ctx: LoweringContext, x: TensorValue, dim: int) -> tuple[Buffer, Buffer]:
    return _extreme("cummax", ctx, x, dim)


def lower_cummin(ctx: LoweringContext, x: TensorValue, dim: int) -> tuple[Buffer, Buffer]:
    return _extreme("cummin", ctx, x, dim)
