"""Lowerings to extern kernels: GEMM (mm, addmm, bmm), convolution (1-, 2-
and 3-D, transposed, grouped), pooling (max, average, adaptive average and
max, 1- to 3-D, and max pooling's gradient) and scaled dot-product
attention.

[Note: extern lowering] Each op becomes one ExternKernel whose inputs are
realized values: buffers and strided views stay as they are (a transposed
weight or an expanded batch is read in place through its strides); anything
unrealized is computed into a contiguous buffer first. Inputs are reshaped,
without copies, into the operand ranks the kernel takes (convolution and
pooling operands become 5-D [N, C, D, H, W]: 2-D ones gain a size-1 depth,
1-D ones a height too, unbatched pooling inputs a batch; an addmm bias is
broadcast to [M, N] with stride 0, attention operands become 4-D) —
aot/codegen/cpp/extern_calls.py, [Note: extern kernel operands], lists them
per kind. Spatial params (stride, padding, ...) are padded to three values
the same way (depth and height first, with the values that make a size-1 dim
a no-op). Output sizes are symbolic; pooling and convolution use FloorDiv.
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
# The GPU's templates (Triton, tensor cores) also take float16.
GPU_KERNEL_DTYPES = (*KERNEL_DTYPES, torch.float16)


def kernel_dtypes(ctx: LoweringContext) -> tuple[torch.dtype, ...]:
    """The dtypes GEMM, convolution and attention kernels take on ctx's device."""
    return GPU_KERNEL_DTYPES if ctx.device == "cuda" else KERNEL_DTYPES


def register(registry: LoweringRegistry) -> None:
    registry.register(aten.mm.default)(lower_mm)
    registry.register(aten.addmm.default)(lower_addmm)
    registry.register(aten.bmm.default)(lower_bmm)
    registry.register(aten.convolution.default)(lower_convolution)
    registry.register(aten.max_pool2d_with_indices.default)(lower_max_pool2d_with_indices)
    registry.register(aten.max_pool3d_with_indices.default)(lower_max_pool3d_with_indices)
    registry.register(aten.max_pool2d_with_indices_backward.default)(
        lower_max_pool2d_with_indices_backward
    )
    registry.register(aten.max_pool3d_with_indices_backward.default)(
        lower_max_pool3d_with_indices_backward
    )
    registry.register(aten.avg_pool2d.default)(lower_avg_pool2d)
    registry.register(aten.avg_pool3d.default)(lower_avg_pool3d)
    registry.register(aten._adaptive_avg_pool2d.default)(lower_adaptive_avg_pool2d)
    registry.register(aten._adaptive_avg_pool3d.default)(lower_adaptive_avg_pool3d)
    registry.register(aten.adaptive_max_pool2d.default)(lower_adaptive_max_pool2d)
    registry.register(aten.adaptive_max_pool3d.default)(lower_adaptive_max_pool3d)
    registry.register(aten.scaled_dot_product_attention.default)(lower_sdpa)
    registry.register(aten._scaled_dot_product_flash_attention_for_cpu.default)(
        lower_sdpa_flash_for_cpu
    )


# -- helpers ---------------------------------------------------------------------


def _kernel_dtype(ctx: LoweringContext, op: str, *values: Strided) -> torch.dtype:
    dtype = values[0].dtype
    if dtype not in kernel_dtypes(ctx):
        raise NotImplementedError(
            f"{op}: aotc's CPU kernels take float32 or bfloat16, got {dtype} "
            "(GPU packages, --device cuda, take float16 too)"
        )
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


def _ints(value: int | Sequence[int], name: str, op: str, count: int) -> list[int]:
    """|count| int parameters (one value repeats); symbolic values are refused."""
    values = [value] if isinstance(value, int | sympy.Integer) else list(value)
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise ValueError(f"{op}: {name} must have 1 or {count} values, got {values}")
    try:
        return [int(v) for v in values]
    except TypeError:
        raise NotImplementedError(f"{op}: symbolic {name} {values} is not supported") from None


def _spatial3(value: int | Sequence[int], name: str, op: str, dims: int, neutral: int) -> list[int]:
    """A parameter of |dims| spatial dims as the kernels' three (depth,
    height, width): the missing leading dims get |neutral|, the value that
    leaves a size-1 dim alone (stride 1, padding 0, ...)."""
    return [neutral] * (3 - dims) + _ints(value, name, op, dims)


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
    dtype = _kernel_dtype(ctx, "mm", ra, rb)
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
    dtype = _kernel_dtype(ctx, "addmm", ra, rb)
    m, _ = ra.get_size()
    _, n = rb.get_size()
    inputs: list[Strided] = [ra, rb]
    if float(beta) != 0.0:  # beta == 0 ignores the bias, NaN included (as addmm)
        rbias = ctx.realize(bias)
        _kernel_dtype(ctx, "addmm", ra, rbias)
        inputs.append(_broadcast(rbias, [m, n]))
    params = {"alpha": float(alpha), "beta": float(beta)}
    (out,) = ctx.extern("addmm", inputs, [([m, n], dtype)], params)
    return out


def lower_bmm(ctx: LoweringContext, a: TensorValue, b: TensorValue) -> Buffer:
    ra, rb = ctx.realize(a), ctx.realize(b)
    dtype = _kernel_dtype(ctx, "bmm", ra, rb)
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
    op = "convolution"
    rx, rw = ctx.realize(x), ctx.realize(weight)
    dtype = _kernel_dtype(ctx, op, rx, rw)
    rank = len(rx.get_size())
    if rank not in (3, 4, 5):
        raise NotImplementedError(
            f"convolution of a {rank}-d input: aotc supports conv1d, conv2d and conv3d "
            "(3-d to 5-d inputs)"
        )
    dims = rank - 2
    strides = _spatial3(stride, "stride", op, dims, 1)
    pads = _spatial3(padding, "padding", op, dims, 0)
    dils = _spatial3(dilation, "dilation", op, dims, 1)
    out_pads = _spatial3(output_padding or [0], "output_padding", op, dims, 0)
    groups = int(groups)
    n, _, *size = rx.get_size()
    kernel = [int(k) for k in rw.get_size()[2:]]
    real = slice(3 - dims, 3)  # the op's own dims among the kernel's three
    window = list(zip(size, kernel, strides[real], pads[real], dils[real], strict=True))
    if transposed:
        c_out = rw.get_size()[1] * groups
        out_spatial = [
            conv_transpose_output_size(*w, extra)
            for w, extra in zip(window, out_pads[real], strict=True)
        ]
    else:
        c_out = rw.get_size()[0]
        out_spatial = [conv_output_size(*w) for w in window]
    out_size = [n, c_out, *out_spatial]
    _check_positive(op, out_size)
    inputs: list[Strided] = [_insert_dims(rx, 2, 3 - dims), _insert_dims(rw, 2, 3 - dims)]
    if bias is not None:
        rbias = ctx.realize(bias)
        _kernel_dtype(ctx, op, rx, rbias)
        inputs.append(rbias)
    params = {
        "stride": strides,
        "padding": pads,
        "dilation": dils,
        "transposed": bool(transposed),
        "output_padding": out_pads,
        "groups": groups,
        "spatial_dims": dims,
    }
    (out,) = ctx.extern(op, inputs, [(out_size, dtype)], params)
    return out


# -- pooling -----------------------------------------------------------------------


def _as_5d(op: str, value: Strided, dims: int) -> tuple[ReinterpretView, list[Expr]]:
    """(|value|, an input of |dims|-d pooling, as a 5-D view [N, C, D, H, W]:
    an unbatched value gains N, missing spatial dims size 1; the leading dims
    of the op's output)."""
    sizes = value.get_size()
    if len(sizes) == dims + 1:
        lead, value = sizes[:1], _insert_dims(value, 0)
    elif len(sizes) == dims + 2:
        lead = sizes[:2]
    else:
        raise ValueError(f"{op}: expected a {dims + 1}-d or {dims + 2}-d input, got {len(sizes)}-d")
    return _insert_dims(value, 2, 3 - dims), list(lead)


def _pool_input(
    op: str, ctx: LoweringContext, x: TensorValue, dims: int
) -> tuple[ReinterpretView, list[Expr]]:
    """|x| realized, as _as_5d."""
    rx = ctx.realize(x)
    _kernel_dtype(ctx, op, rx)
    return _as_5d(op, rx, dims)


def _pool_params(
    op: str,
    dims: int,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
) -> dict[str, list[int]]:
    """kernel_size, stride, padding and dilation as three values each."""
    kernel = _spatial3(kernel_size, "kernel_size", op, dims, 1)
    params = {
        "kernel_size": kernel,
        "stride": _spatial3(stride, "stride", op, dims, 1) if stride else kernel,
        "padding": _spatial3(padding, "padding", op, dims, 0),
        "dilation": _spatial3(dilation, "dilation", op, dims, 1),
    }
    for k, pad in zip(kernel, params["padding"], strict=True):
        if pad > k // 2:  # eager refuses it too; it would also allow empty windows
            raise ValueError(
                f"{op}: padding {params['padding'][3 - dims :]} must be at most half the "
                f"kernel size {kernel[3 - dims :]}"
            )
    return params


def _pool_output(
    op: str, x5: ReinterpretView, dims: int, params: dict[str, list[int]], ceil_mode: bool
) -> list[Expr]:
    """The output sizes of the op's own spatial dims."""
    window = zip(
        x5.get_size()[2:],
        params["kernel_size"],
        params["stride"],
        params["padding"],
        params["dilation"],
        strict=True,
    )
    sizes = [pool_output_size(*args, bool(ceil_mode)) for args in window][3 - dims :]
    _check_positive(op, sizes)
    return sizes


def _max_pool(
    ctx: LoweringContext,
    op: str,
    dims: int,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    ceil_mode: bool,
) -> tuple[Buffer, Buffer]:
    x5, lead = _pool_input(op, ctx, x, dims)
    window = _pool_params(op, dims, kernel_size, stride, padding, dilation)
    size = [*lead, *_pool_output(op, x5, dims, window, ceil_mode)]
    params = {**window, "ceil_mode": bool(ceil_mode), "dims": dims}
    # The kernel fills indices only when the indices buffer is live
    # (extern_calls passes nullptr for a dead one).
    values, indices = ctx.extern("max_pool", [x5], [(size, x5.dtype), (size, torch.int64)], params)
    return values, indices


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
    return _max_pool(ctx, op, 2, x, kernel_size, stride, padding, dilation, ceil_mode)


def lower_max_pool3d_with_indices(
    ctx: LoweringContext,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int] = (),
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> tuple[Buffer, Buffer]:
    op = "max_pool3d_with_indices"
    return _max_pool(ctx, op, 3, x, kernel_size, stride, padding, dilation, ceil_mode)


def _max_pool_backward(
    ctx: LoweringContext,
    op: str,
    dims: int,
    grad_output: TensorValue,
    x: TensorValue,
    indices: TensorValue,
) -> Buffer:
    """grad_input (x's sizes) = zeros with grad_output added at indices; the
    window params only shaped the forward's indices, so they are not needed."""
    go5, lead = _pool_input(op, ctx, grad_output, dims)
    ri = ctx.realize(indices)
    if ri.dtype != torch.int64:
        raise TypeError(f"{op}: indices must be int64, got {ri.dtype}")
    if list(ri.get_size()) != list(grad_output.get_size()):
        raise ValueError(
            f"{op}: indices {list(ri.get_size())} and grad_output "
            f"{list(grad_output.get_size())} differ in shape"
        )
    sizes = list(x.get_size())
    if len(sizes) != len(grad_output.get_size()) or sizes[: len(lead)] != lead:
        raise ValueError(f"{op}: grad_output {list(grad_output.get_size())} does not fit {sizes}")
    params = {"op": op, "dims": dims}
    (grad_input,) = ctx.extern(
        "max_pool_backward", [go5, _as_5d(op, ri, dims)[0]], [(sizes, go5.dtype)], params
    )
    return grad_input


def lower_max_pool2d_with_indices_backward(
    ctx: LoweringContext,
    grad_output: TensorValue,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    indices: TensorValue,
) -> Buffer:
    op = "max_pool2d_with_indices_backward"
    return _max_pool_backward(ctx, op, 2, grad_output, x, indices)


def lower_max_pool3d_with_indices_backward(
    ctx: LoweringContext,
    grad_output: TensorValue,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    indices: TensorValue,
) -> Buffer:
    op = "max_pool3d_with_indices_backward"
    return _max_pool_backward(ctx, op, 3, grad_output, x, indices)


def _avg_pool(
    ctx: LoweringContext,
    op: str,
    dims: int,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: int | Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Buffer:
    x5, lead = _pool_input(op, ctx, x, dims)
    window = _pool_params(op, dims, kernel_size, stride, padding, 1)
    # Eager divides by a negative override too; only 0 is refused.
    if divisor_override is not None and int(divisor_override) == 0:
        raise ValueError(f"{op}: divisor_override must not be zero")
    size = [*lead, *_pool_output(op, x5, dims, window, ceil_mode)]
    params = {
        **window,
        "ceil_mode": bool(ceil_mode),
        "count_include_pad": bool(count_include_pad),
        "divisor_override": None if divisor_override is None else int(divisor_override),
        "dims": dims,
    }
    (out,) = ctx.extern("avg_pool", [x5], [(size, x5.dtype)], params)
    return out


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
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg_pool(ctx, "avg_pool2d", 2, x, *args)


def lower_avg_pool3d(
    ctx: LoweringContext,
    x: TensorValue,
    kernel_size: Sequence[int],
    stride: Sequence[int] = (),
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Buffer:
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg_pool(ctx, "avg_pool3d", 3, x, *args)


def _adaptive_pool(
    ctx: LoweringContext,
    op: str,
    with_indices: bool,
    dims: int,
    x: TensorValue,
    output_size: Sequence[int],
) -> list[Buffer]:
    """Adaptive average pooling (one output) or, |with_indices|, max pooling
    (values, indices; not decomposed by torch.export) over the same windows.
    A dead indices buffer is skipped by the kernel (nullptr)."""
    x5, lead = _pool_input(op, ctx, x, dims)
    out = _ints(output_size, "output_size", op, dims)
    sizes = [*lead, *(sympy.Integer(s) for s in out)]
    outputs: list[tuple[Sequence[Expr], torch.dtype]] = [(sizes, x5.dtype)]
    if with_indices:
        outputs.append((sizes, torch.int64))
    kind = "adaptive_max_pool" if with_indices else "adaptive_avg_pool"
    return ctx.extern(kind, [x5], outputs, {"dims": dims})


def lower_adaptive_avg_pool2d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> Buffer:
    (out,) = _adaptive_pool(ctx, "adaptive_avg_pool2d", False, 2, x, output_size)
    return out


def lower_adaptive_avg_pool3d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> Buffer:
    (out,) = _adaptive_pool(ctx, "adaptive_avg_pool3d", False, 3, x, output_size)
    return out


def lower_adaptive_max_pool2d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> tuple[Buffer, Buffer]:
    values, indices = _adaptive_pool(ctx, "adaptive_max_pool2d", True, 2, x, output_size)
    return values, indices


def lower_adaptive_max_pool3d(
    ctx: LoweringContext, x: TensorValue, output_size: Sequence[int]
) -> tuple[Buffer, Buffer]:
    values, indices = _adaptive_pool(ctx, "adaptive_max_pool3d", True, 3, x, output_size)
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
    dtype = _kernel_dtype(ctx, op, q, k, v)
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
        if mask.dtype not in (torch.bool, *kernel_dtypes(ctx)):
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
