"""Lowerings to extern kernels: GEMM (mm, addmm, bmm), convolution (1-D, 2-D,
transposed, grouped), pooling (max, average, adaptive average) and scaled
dot-product attention.

[Note: extern lowering] Each op becomes one ExternKernel whose inputs are
realized values: buffers and strided views stay as they are (a transposed
weight or an expanded batch is read in place through its strides); anything
unrealized is computed into a contiguous buffer first. Inputs are reshaped,
without copies, into the operand ranks the kernel takes (conv1d and
unbatched pooling gain a size-1 dim, an addmm bias is broadcast to [M, N]
with stride 0, attention operands become 4-D) — aot/codegen/cpp/
extern_calls.py, [Note: extern kernel operands], lists them per kind.
Output sizes are symbolic; pooling and convolution use FloorDiv.
Kernels exist for float32 and bfloat16; other dtypes raise
NotImplementedError naming the op.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch

from ..ir.nodes import Buffer, Layout, ReinterpretView, TensorValue
from ..ir.symbols import FloorDiv
from .context import LoweringContext
from .registry import LoweringRegistry

aten = torch.ops.aten
Expr = sympy.Expr
Strided = Buffer | ReinterpretView

KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.mm.default)(lower_mm)
    registry.register(aten.addmm.default)(lower_addmm)
    registry.register(aten.bmm.default)(lower_bmm)
    registry.register(aten.convolution.default)(lower_convolution)
    registry.register(aten.max_pool2d_with_indices.default)(lower_max_pool2d_with_indices)
    registry.register(aten.avg_pool2d.default)(lower_avg_pool2d)
    registry.register(aten._adaptive_avg_pool2d.default)(lower_adaptive_avg_pool2d)
    registry.register(aten.adaptive_max_pool2d.default)(lower_adaptive_max_pool2d)
    registry.register(aten.scaled_dot_product_attention.default)(lower_sdpa)
    registry.register(aten._scaled_dot_product_flash_attention_for_cpu.default)(
        lower_sdpa_flash_for_cpu
    )


# -- helpers ---------------------------------------------------------------------


def _kernel_dtype(op: str, *values: Strided) -> torch.dtype:
    dtype = values[0].dtype
    if dtype not in KERNEL_DTYPES:
        raise NotImplementedError(f"{op}: aotc's CPU kernels take float32 or bfloat16, got {dtype}")
    for value in values[1:]:
        if value.dtype != dtype:
            raise TypeError(f"{op}: operands must share one dtype, got {dtype} and {value.dtype}")
    return dtype


def _strided(value: Strided) -> tuple[Buffer, Layout]:
    if isinstance(value, ReinterpretView):
        return value.data, value.layout
    return value, value.layout


def _view(value: Strided, sizes: Sequence[Expr], strides: Sequence[Expr]) -> ReinterpretView:
    """|value|'s storage read with |sizes| and |strides| (same offset)."""
    buffer, layout = _strided(value)
    sizes = [sympy.sympify(s) for s in sizes]
    strides = [sympy.sympify(s) for s in strides]
    return ReinterpretView(buffer, Layout(tuple(sizes), tuple(strides), layout.offset))


def _insert_dims(value: Strided, dim: int, count: int = 1) -> ReinterpretView:
    """|value| with |count| size-1 dims inserted at |dim|."""
    _, layout = _strided(value)
    sizes, strides = list(layout.sizes), list(layout.strides)
    one, zero = sympy.Integer(1), sympy.Integer(0)
    return _view(
        value,
        sizes[:dim] + [one] * count + sizes[dim:],
        strides[:dim] + [zero] * count + strides[dim:],
    )


def _broadcast(value: Strided, sizes: Sequence[Expr]) -> Strided:
    """|value| expanded to |sizes| (right-aligned; stretched and missing dims
    get stride 0)."""
    _, layout = _strided(value)
    own_sizes, own_strides = list(layout.sizes), list(layout.strides)
    if len(own_sizes) > len(sizes):
        raise ValueError(f"cannot broadcast {own_sizes} to {list(sizes)}")
    lead = len(sizes) - len(own_sizes)
    strides: list[Expr] = [sympy.Integer(0)] * lead
    for k, (size, stride) in enumerate(zip(own_sizes, own_strides, strict=True)):
        target = sympy.sympify(sizes[lead + k])
        if size == target:
            strides.append(stride)
        elif size == 1:
            strides.append(sympy.Integer(0))
        else:
            raise ValueError(f"cannot broadcast {own_sizes} to {list(sizes)}")
    if lead == 0 and all(s == t for s, t in zip(own_strides, strides, strict=True)):
        return value
    return _view(value, sizes, strides)


def _pair(value: int | Sequence[int], name: str, op: str) -> list[int]:
    """A 2-D int parameter: one value repeats; symbolic values are refused."""
    values = [value] if isinstance(value, int | sympy.Integer) else list(value)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ValueError(f"{op}: {name} must have 1 or 2 values, got {values}")
    try:
        return [int(v) for v in values]
    except TypeError:
        raise NotImplementedError(f"{op}: symbolic {name} {values} is not supported") from None


def conv_output_size(size: Expr, kernel: int, stride: int, pad: int, dilation: int) -> Expr:
    """floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1."""
    return FloorDiv(size + 2 * pad - dilation * (kernel - 1) - 1, stride) + 1


def conv_transpose_output_size(
    size: Expr, kernel: int, stride: int, pad: int, dilation: int, output_padding: int
) -> Expr:
    return (size - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1


def pool_output_size(
    size: Expr, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> Expr:
    """torch's pooling_output_shape. With ceil_mode the last window must
    start inside the input or its left padding, else it is dropped."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return FloorDiv(span, stride) + 1
    out = FloorDiv(span + stride - 1, stride) + 1
    drop = (out - 1) * stride >= size + pad
    if drop in (sympy.true, sympy.false):
        return out - 1 if drop == sympy.true else out
    # Symbolic: (out-1)*stride < span + stride <= size + pad whenever
    # pad + stride <= dilation*(kernel-1) + 1, so no window is ever dropped.
    if pad + stride <= dilation * (kernel - 1) + 1:
        return out
    raise NotImplementedError(
        f"ceil_mode pooling of dynamic size {size} with kernel {kernel}, stride {stride}, "
        f"padding {pad} (the last window may need dropping at run time)"
    )


def _check_positive(op: str, sizes: Sequence[Expr]) -> None:
    for size in sizes:
        if size.is_number and int(size) < 0:
            raise ValueError(f"{op}: computed output size {list(sizes)} is negative")


# -- GEMM ------------------------------------------------------------------------


def lower_mm(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Buffer:
    ra, rb = ctx.realize(a), ctx.realize(b)
    dtype = _kernel_dtype("mm", ra, rb)
    m, _ = ra.get_size()
    _, n = rb.get_size()
    (out,) = ctx.extern("mm", [ra, rb], [([m, n], dtype)], {"alpha": 1.0, "beta": 0.0})
    return out


def lower_addmm(
    ctx: LoweringContext,
    bias: TensorValue,
    a: TensorValue,
    b: TensorValue,
    *,
    beta: float = 1,
    alpha: float = 1,
) -> Buffer:
    ra, rb = ctx.realize(a), ctx.realize(b)
    dtype = _kernel_dtype("addmm", ra, rb)
    m, _ = ra.get_size()
    _, n = rb.get_size()
    inputs: list[Strided] = [ra, rb]
    if float(beta) != 0.0:  # beta == 0 ignores the bias, NaN included (as addmm)
        rbias = ctx.realize(bias)
        _kernel_dtype("addmm", ra, rbias)
        inputs.append(_broadcast(rbias, [m, n]))
    params = {"alpha": float(alpha), "beta": float(beta)}
    (out,) = ctx.extern("addmm", inputs, [([m, n], dtype)], params)
    return out


def lower_bmm(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Buffer:
    ra, rb = ctx.realize(a), ctx.realize(b)
    dtype = _kernel_dtype("bmm", ra, rb)
    batch, m, _ = ra.get_size()
    _, _, n = rb.get_size()
    (out,) = ctx.extern("bmm", [ra, rb], [([batch, m, n], dtype)], {})
    return out


# -- convolution --------------------------------------------------------------------


def lower_convolution(
    ctx: LoweringContext,
    x: TensorValue,
    weight: TensorValue,
    bias: TensorValue | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    output_padding: Sequence[int],
    groups: int,
) -> Buffer:
    rx, rw = ctx.realize(x), ctx.realize(weight)
    dtype = _kernel_dtype("convolution", rx, rw)
    rank = len(rx.get_size())
    if rank == 3:  # conv1d: a 2-D convolution over [N, C, 1, L]
        spatial = 1
        rx, rw = _insert_dims(rx, 2), _insert_dims(rw, 2)
        pad1 = [0, *_pair(padding, "padding", "convolution")[:1]]
        stride2 = [1, *_pair(stride, "stride", "convolution")[:1]]
        dil2 = [1, *_pair(dilation, "dilation", "convolution")[:1]]
        outpad2 = [0, *_pair(output_padding or [0], "output_padding", "convolution")[:1]]
    elif rank == 4:
        spatial = 2
        pad1 = _pair(padding, "padding", "convolution")
        stride2 = _pair(stride, "stride", "convolution")
        dil2 = _pair(dilation, "dilation", "convolution")
        outpad2 = _pair(output_padding or [0], "output_padding", "convolution")
    else:
        raise NotImplementedError(
            f"convolution of a {rank}-d input: aotc supports conv1d and conv2d (3-d and 4-d)"
        )
    groups = int(groups)
    n, c_in, h, w = rx.get_size()
    kh, kw = (int(s) for s in rw.get_size()[2:])
    if transposed:
        c_out = rw.get_size()[1] * groups
        sizes_hw = [
            conv_transpose_output_size(size, k, s, p, d, op)
            for size, k, s, p, d, op in zip(
                (h, w), (kh, kw), stride2, pad1, dil2, outpad2, strict=True
            )
        ]
    else:
        c_out = rw.get_size()[0]
        sizes_hw = [
            conv_output_size(size, k, s, p, d)
            for size, k, s, p, d in zip((h, w), (kh, kw), stride2, pad1, dil2, strict=True)
        ]
    out_size = [n, c_out, *sizes_hw] if spatial == 2 else [n, c_out, sizes_hw[1]]
    _check_positive("convolution", out_size)
    inputs: list[Strided] = [rx, rw]
    if bias is not None:
        rbias = ctx.realize(bias)
        _kernel_dtype("convolution", rx, rbias)
        inputs.append(rbias)
    params = {
        "stride": stride2,
        "padding": pad1,
        "dilation": dil2,
        "transposed": bool(transposed),
        "output_padding": outpad2,
        "groups": groups,
        "spatial_dims": spatial,
    }
    (out,) = ctx.extern("convolution", inputs, [(out_size, dtype)], params)
    return out


# -- pooling -----------------------------------------------------------------------


def _pool_input(op: str, ctx: LoweringContext, x: TensorValue) -> tuple[Strided, list[Expr]]:
    """(x as a 4-D view, the output's leading dims)."""
    rx = ctx.realize(x)
    _kernel_dtype(op, rx)
    sizes = rx.get_size()
    if len(sizes) == 3:
        return _insert_dims(rx, 0), sizes[:1]
    if len(sizes) == 4:
        return rx, sizes[:2]
    raise ValueError(f"{op}: expected a 3-d or 4-d input, got {len(sizes)}-d")


def _pool_params(
    op: str,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
) -> tuple[list[int], list[int], list[int], list[int]]:
    kernel = _pair(kernel_size, "kernel_size", op)
    strides = _pair(stride, "stride", op) if stride else kernel
    pads = _pair(padding, "padding", op)
    dils = _pair(dilation, "dilation", op)
    for k, p in zip(kernel, pads, strict=True):
        if p > k // 2:  # eager refuses it too; it would also allow empty windows
            raise ValueError(f"{op}: padding {pads} must be at most half the kernel size {kernel}")
    return kernel, strides, pads, dils


def lower_max_pool2d_with_indices(
    ctx: LoweringContext,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int] = (),
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> tuple[Buffer, Buffer]:
    op = "max_pool2d_with_indices"
    rx, lead = _pool_input(op, ctx, x)
    kernel, strides, pads, dils = _pool_params(op, kernel_size, stride, padding, dilation)
    h, w = rx.get_size()[2:]
    out_hw = [
        pool_output_size(size, k, s, p, d, bool(ceil_mode))
        for size, k, s, p, d in zip((h, w), kernel, strides, pads, dils, strict=True)
    ]
    _check_positive(op, out_hw)
    params = {
        "kernel_size": kernel,
        "stride": strides,
        "padding": pads,
        "dilation": dils,
        "ceil_mode": bool(ceil_mode),
    }
    size = [*lead, *out_hw]
    # The kernel fills indices only when the indices buffer is live
    # (extern_calls passes nullptr for a dead one).
    values, indices = ctx.extern(
        "max_pool2d", [rx], [(size, rx.dtype), (size, torch.int64)], params
    )
    return values, indices


def lower_avg_pool2d(
    ctx: LoweringContext,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int] = (),
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Buffer:
    op = "avg_pool2d"
    rx, lead = _pool_input(op, ctx, x)
    kernel, strides, pads, _ = _pool_params(op, kernel_size, stride, padding, 1)
    if divisor_override is not None and int(divisor_override) <= 0:
        raise ValueError(f"{op}: divisor_override must be > 0, got {divisor_override}")
    h, w = rx.get_size()[2:]
    out_hw = [
        pool_output_size(size, k, s, p, 1, bool(ceil_mode))
        for size, k, s, p in zip((h, w), kernel, strides, pads, strict=True)
    ]
    _check_positive(op, out_hw)
    params = {
        "kernel_size": kernel,
        "stride": strides,
        "padding": pads,
        "ceil_mode": bool(ceil_mode),
        "count_include_pad": bool(count_include_pad),
        "divisor_override": None if divisor_override is None else int(divisor_override),
    }
    (out,) = ctx.extern(op, [rx], [([*lead, *out_hw], rx.dtype)], params)
    return out


def lower_adaptive_avg_pool2d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> Buffer:
    op = "adaptive_avg_pool2d"
    rx, lead = _pool_input(op, ctx, x)
    out_hw = _pair(output_size, "output_size", op)
    sizes = [*lead, *(sympy.Integer(s) for s in out_hw)]
    (out,) = ctx.extern(op, [rx], [(sizes, rx.dtype)], {"output_size": out_hw})
    return out


def lower_adaptive_max_pool2d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> tuple[Buffer, Buffer]:
    # Not decomposed by torch.export; adaptive_avg_pool2d's windows with a max
    # (values, indices) as max_pool2d. Dead indices are skipped (nullptr).
    op = "adaptive_max_pool2d"
    rx, lead = _pool_input(op, ctx, x)
    out_hw = _pair(output_size, "output_size", op)
    sizes = [*lead, *(sympy.Integer(s) for s in out_hw)]
    values, indices = ctx.extern(
        op, [rx], [(sizes, rx.dtype), (sizes, torch.int64)], {"output_size": out_hw}
    )
    return values, indices


# -- attention --------------------------------------------------------------------


def _sdpa(
    ctx: LoweringContext,
    op: str,
    query: TensorValue,
    key: TensorValue,
    value: TensorValue,
    attn_mask: TensorValue | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    with_lse: bool,
) -> list[Buffer]:
    if float(dropout_p) != 0.0:
        raise NotImplementedError(f"{op}: dropout_p={dropout_p} (training mode? call model.eval())")
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: attn_mask and is_causal cannot both be set")
    q, k, v = ctx.realize(query), ctx.realize(key), ctx.realize(value)
    dtype = _kernel_dtype(op, q, k, v)
    rank = len(q.get_size())
    if not 2 <= rank <= 4 or len(k.get_size()) > rank or len(v.get_size()) > rank:
        raise NotImplementedError(f"{op}: query of rank {rank} (aotc supports ranks 2 to 4)")
    q_sizes = q.get_size()
    lead, q_len = q_sizes[:-2], q_sizes[-2]
    kv_len, v_dim = k.get_size()[-2], v.get_size()[-1]

    def as4(t: Strided) -> Strided:  # [.., L, E] -> [B, H, L, E]
        return _insert_dims(t, 0, 4 - rank) if rank < 4 else t

    # Key/value batch dims broadcast over the query's (stride 0); their head
    # dim may be smaller (grouped-query attention).
    kv_lead = list(lead)
    if rank >= 3:
        kv_lead[-1] = k.get_size()[-3] if len(k.get_size()) >= 3 else sympy.Integer(1)
    k4 = as4(_broadcast(k, [*kv_lead, kv_len, k.get_size()[-1]]))
    v4 = as4(_broadcast(v, [*kv_lead, kv_len, v_dim]))
    inputs: list[Strided] = [as4(q), k4, v4]
    if attn_mask is not None:
        mask = ctx.realize(attn_mask)
        if mask.dtype not in (torch.bool, *KERNEL_DTYPES):
            raise TypeError(f"{op}: attn_mask must be bool or floating point, got {mask.dtype}")
        inputs.append(as4(_broadcast(mask, [*lead, q_len, kv_len])))
    params = {
        "scale": None if scale is None else float(scale),
        "is_causal": bool(is_causal),
        "has_mask": attn_mask is not None,
    }
    outputs: list[tuple[Sequence[Expr], torch.dtype]] = [([*lead, q_len, v_dim], dtype)]
    if with_lse:
        outputs.append(([*lead, q_len], torch.float32))
    return ctx.extern("sdpa", inputs, outputs, params)


def lower_sdpa(
    ctx: LoweringContext,
    query: TensorValue,
    key: TensorValue,
    value: TensorValue,
    attn_mask: TensorValue | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Buffer:
    op = "scaled_dot_product_attention"
    if not enable_gqa and len(query.get_size()) >= 3:
        hq, hk = query.get_size()[-3], key.get_size()[-3] if len(key.get_size()) >= 3 else 1
        if hq != hk and hk != 1:
            raise ValueError(f"{op}: {hq} query heads and {hk} key heads need enable_gqa=True")
    (out,) = _sdpa(ctx, op, query, key, value, attn_mask, dropout_p, is_causal, scale, False)
    return out


def lower_sdpa_flash_for_cpu(
    ctx: LoweringContext,
    query: TensorValue,
    key: TensorValue,
    value: TensorValue,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: TensorValue | None = None,
    scale: float | None = None,
) -> tuple[Buffer, Buffer]:
    """(output, logsumexp). The output is contiguous [B, H, L, Ev] (eager's
    has [B, L, H, Ev] memory order; IR consumers read layouts, not eager
    strides)."""
    op = "_scaled_dot_product_flash_attention_for_cpu"
    out, lse = _sdpa(ctx, op, query, key, value, attn_mask, dropout_p, is_causal, scale, True)
    return out, lse
