"""Triton convolution template: 1- to 3-D, grouped, depthwise and transposed
convolution as an implicit GEMM with a fused epilogue ([Note: Triton
implicit-GEMM convolution]).

[Note: Triton implicit-GEMM convolution] Per group, the output is the GEMM
of output pixels (n, od, oh, ow: the rows, M) by output channels (the
columns, N), reducing over r = (ci, kz, ky, kx), ci < C_in/groups (K). No
patch matrix is built: each K step decomposes its BLOCK_K reduction indices
into (ci, kz, ky, kx) and each BLOCK_M pixel into (n, od, oh, ow), computes
the input coordinates od*stride - pad + kz*dilation (masked outside the
input: the zero padding) and gathers the A tile from x through its strides;
the B tile is the weight, contiguous along r for a standard weight. r in
weight order keeps B's loads coalesced and A's along ow (unit input stride
for stride 1). Transposed convolution gathers the same way (output o takes
input i where o = i*stride - pad + k*dilation: (o + pad - k*dilation) must
be a non-negative multiple of the stride) with the weight [C_in,
C_out/groups, k...]. Spatial dims that are trivial (size 1 everywhere, as
conv2d's depth) emit no code. Grid: the pixel x channel tiles of a group
(GROUP_M-swizzled) times the groups.

Depthwise convolutions (one input and one output channel per group) would
waste most of a 16-wide tl.dot; they run on a direct kernel instead: a
block of pixels times a block of channels, one multiply-add per tap.
"""

from __future__ import annotations

import sympy
import torch

from ....scheduler.schedule import ExternCall
from ..context import TritonContext, TritonEpilogue
from ..launch import TritonCodegenError, TritonKernel
from .gemm import (
    SM_COUNT,
    GemmConfig,
    KernelParams,
    cdiv,
    cdiv_text,
    dot_call,
    epilogue_lines,
    finish_kernel,
    needs_int64,
    swizzle_lines,
    tl_dtype,
)

_DIMS = "dhw"
MAX_DIRECT_TAPS = 64


def conv_config(pixels: int, cout_g: int, reduction: int, dtype: torch.dtype) -> GemmConfig:
    """The implicit GEMM's tile: columns just covering the group's output
    channels (16 to 128), K steps as deep as the reduction allows, rows
    shrinking until the grid fills the GPU."""
    wide = dtype in (torch.bfloat16, torch.float16)
    block_n = min(128, max(16, 1 << (max(cout_g, 1) - 1).bit_length()))
    block_k = 16
    for candidate in (64, 32) if wide else (32,):
        if reduction >= candidate:
            block_k = candidate
            break
    # 64 rows at least: Hopper's wgmma takes 64-row tiles per warp group.
    block_m = 128
    while block_m > 64 and -(-pixels // block_m) * -(-cout_g // block_n) < SM_COUNT:
        block_m //= 2
    warps = 8 if block_m * block_n >= 128 * 128 else 4
    return GemmConfig(block_m, block_n, block_k, 8, warps, 3 if wide else 2)


def _reduction_contiguous(w, kernel: list[int]) -> bool:
    """Whether weight [C_out, C_in/groups, k...] holds each output channel's
    reduction (ci, kz, ky, kx) contiguously, in that order."""
    expected = 1
    for size, stride in reversed(list(zip(w.layout.sizes[1:], w.layout.strides[1:], strict=True))):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _int(expr: sympy.Expr | int, fallback: int = 1024) -> int:
    expr = sympy.sympify(expr)
    return int(expr) if expr.is_Integer else fallback


def generate_convolution(
    call: ExternCall, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node, params = call.node, call.node.params
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out = node.outputs[0]
    dtype = out.dtype
    tl_dtype(dtype, "convolution")
    for value in node.inputs:
        if value.dtype != dtype:
            raise TritonCodegenError(f"convolution: operands of {value.dtype} and {dtype}")
    groups = int(params["groups"])
    transposed = bool(params["transposed"])
    stride, pad, dil = (list(map(int, params[k])) for k in ("stride", "padding", "dilation"))
    if min(stride) <= 0 or min(dil) <= 0:
        raise TritonCodegenError("convolution: stride and dilation must be > 0")
    n, c_in, *in_sizes = (sympy.sympify(s) for s in x.layout.sizes)
    kernel = [int(k) for k in w.layout.sizes[2:]]
    out_sizes = [sympy.sympify(s) for s in out.layout.sizes]
    c_out = out_sizes[1]
    out_sp = [sympy.Integer(1)] * (5 - len(out_sizes)) + out_sizes[2:]
    if not (c_in.is_Integer and c_out.is_Integer):
        raise TritonCodegenError("convolution: symbolic channel counts have no GPU kernel")
    if groups <= 0 or int(c_in) % groups or int(c_out) % groups:
        raise TritonCodegenError(
            f"convolution: groups {groups} must divide input channels {c_in} and "
            f"output channels {c_out}"
        )
    cin_g, cout_g = int(c_in) // groups, int(c_out) // groups
    taps = kernel[0] * kernel[1] * kernel[2]
    reduction = cin_g * taps

    p = KernelParams()
    p.pointer("x_ptr", x)
    p.pointer("w_ptr", w)
    if bias is not None:
        p.pointer("bias_ptr", bias)
    p.pointer("out_ptr", out)
    sx = [p.size(s, f"stride_x{i}") for i, s in enumerate(x.layout.strides)]
    sw = [p.size(s, f"stride_w{i}") for i, s in enumerate(w.layout.strides)]
    ins = [p.size(s, f"in_{d}") for s, d in zip(in_sizes, _DIMS, strict=True)]
    outs = [p.size(s, f"out_{d}") for s, d in zip(out_sp, _DIMS, strict=True)]
    batch = p.size(n, "batch")
    pixels_expr = n * out_sp[0] * out_sp[1] * out_sp[2]
    plane_expr = out_sp[0] * out_sp[1] * out_sp[2]
    pixels = p.size(pixels_expr, "pixels")
    plane = p.size(plane_expr, "plane")
    wide = needs_int64(x, w, out) or p.symbolic
    # A dim none of whose sizes exceed 1 adds nothing to any index.
    live = [
        not (in_sizes[d] == 1 and out_sp[d] == 1 and kernel[d] == 1 and pad[d] == 0)
        for d in range(3)
    ]

    # Taps are unrolled in the direct kernel: a bounded number.
    depthwise = cin_g == 1 and cout_g == 1 and not transposed and taps <= MAX_DIRECT_TAPS
    if depthwise:
        return _depthwise(call, p, epilogue, locals())
    config = conv_config(_int(pixels_expr), cout_g, reduction, dtype)
    BM, BN, BK = config.block_m, config.block_n, config.block_k

    body = [
        "tile = tl.program_id(0)",
        "g = tl.program_id(1)",
        *swizzle_lines(cdiv_text(pixels, BM, "BLOCK_M"), cdiv_text(str(cout_g), BN, "BLOCK_N")),
        "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
        "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
    ]
    if wide:
        body += ["rm = rm.to(tl.int64)", "g = g.to(tl.int64)"]
    body += _pixel_coords(outs, live)
    body += [
        f"m_ok = rm < {pixels}",
        f"n_ok = rn < {cout_g}",
        f"x_base = nb * {sx[0]} + g * ({cin_g} * {sx[1]})",
    ]
    if transposed:  # weight [C_in, C_out/groups, k...]
        body.append(f"w_base = (g * {cin_g}) * {sw[0]} + rn * {sw[1]}")
        sw_c = sw[0]
    else:  # weight [C_out, C_in/groups, k...]
        body.append(f"w_base = (g * {cout_g} + rn) * {sw[0]}")
        sw_c = sw[1]
    body += [
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        f"for kk in range(0, {-(-reduction // BK)}):",
        "    rk = kk * BLOCK_K + tl.arange(0, BLOCK_K)",
        f"    k_ok = rk < {reduction}",
    ]
    body += [f"    {line}" for line in _tap_coords(kernel, live)]
    a_offset = ["x_base[:, None]", f"ci[None, :] * {sx[1]}"]
    a_mask = ["m_ok[:, None]", "k_ok[None, :]"]
    b_offset = ["w_base[None, :]", f"ci[:, None] * {sw_c}"]
    for d in range(3):
        if not live[d]:
            continue
        name = _DIMS[d]
        body += [f"    {line}" for line in _input_coord(d, transposed, stride, pad, dil, ins)]
        a_offset.append(f"i{name} * {sx[2 + d]}")
        a_mask.append(f"ok_{name}")
        b_offset.append(f"k{name}[:, None] * {sw[2 + d]}")
    if not transposed and _reduction_contiguous(w, kernel):
        # Weight element r of a row is at offset r: contiguous loads.
        b_offset = ["w_base[None, :]", "rk[:, None]"]
    body += [
        f"    a = tl.load(x_ptr + {' + '.join(a_offset)}, mask={' & '.join(a_mask)}, other=0.0)",
        f"    b = tl.load(w_ptr + {' + '.join(b_offset)},"
        " mask=k_ok[:, None] & n_ok[None, :], other=0.0)",
        f"    {dot_call(dtype)}",
        f"co = g * {cout_g} + rn",
    ]
    body += _bias_and_store(bias, p, epilogue, c_out, plane, "m_ok[:, None] & n_ok[None, :]")

    constexprs = {"BLOCK_M": BM, "BLOCK_N": BN, "BLOCK_K": BK, "GROUP_M": config.group_m}
    grid = (
        cdiv(pixels_expr, BM) * cdiv(sympy.Integer(cout_g), BN),
        sympy.Integer(groups),
        sympy.Integer(1),
    )
    if groups > 65535:
        raise TritonCodegenError(f"convolution: {groups} groups exceed the GPU grid's 65535")
    return [finish_kernel(call.name, p, epilogue, config, constexprs, body, grid, out)]


def _pixel_coords(outs: list[str], live: list[bool]) -> list[str]:
    """nb, od, oh, ow of the tile's pixels rm (trivial dims omitted) and pix,
    the pixel's index within its image's output plane."""
    lines = ["rest = rm"]
    for d in (2, 1, 0):
        if live[d]:
            lines += [f"o{_DIMS[d]} = rest % {outs[d]}", f"rest = rest // {outs[d]}"]
    lines += ["nb = rest", "pix = rm - nb * (" + " * ".join(outs) + ")"]
    return lines


def _tap_coords(kernel: list[int], live: list[bool]) -> list[str]:
    """ci and the taps kd, kh, kw of reduction indices rk (weight order)."""
    lines = ["rrest = rk"]
    for d in (2, 1, 0):
        if kernel[d] > 1:
            lines += [f"k{_DIMS[d]} = rrest % {kernel[d]}", f"rrest = rrest // {kernel[d]}"]
        elif live[d]:
            lines.append(f"k{_DIMS[d]} = rrest * 0")
    lines.append("ci = rrest")
    return lines


def _input_coord(
    d: int, transposed: bool, stride: list[int], pad: list[int], dil: list[int], ins: list[str]
) -> list[str]:
    """i<d> (the input coordinate, [M, K]) and ok_<d> (inside the input)."""
    name = _DIMS[d]
    o, k = f"o{name}[:, None]", f"k{name}[None, :]"
    tap = f"{k} * {dil[d]}" if dil[d] != 1 else k
    if not transposed:
        at = f"{o} * {stride[d]}" if stride[d] != 1 else o
        shift = f" - {pad[d]}" if pad[d] else ""
        return [
            f"i{name} = {at}{shift} + {tap}",
            f"ok_{name} = (i{name} >= 0) & (i{name} < {ins[d]})",
        ]
    shift = f" + {pad[d]}" if pad[d] else ""
    lines = [f"num_{name} = {o}{shift} - {tap}"]
    if stride[d] == 1:
        lines.append(f"i{name} = num_{name}")
        on_grid = ""
    else:
        lines.append(f"i{name} = num_{name} // {stride[d]}")
        on_grid = f" & (num_{name} % {stride[d]} == 0)"
    lines.append(f"ok_{name} = (num_{name} >= 0){on_grid} & (i{name} < {ins[d]})")
    return lines


def _bias_and_store(
    bias, p: KernelParams, epilogue: TritonEpilogue | None, c_out, plane: str, mask: str
) -> list[str]:
    """Adds the bias per output channel co, then stores the tile at
    (nb, co, pix) of the contiguous output (or runs the epilogue)."""
    lines = []
    if bias is not None:
        sb = p.size(bias.layout.strides[0], "stride_bias")
        lines.append(
            f"acc = acc + tl.load(bias_ptr + co * {sb}, mask=n_ok, other=0.0)"
            ".to(tl.float32)[None, :]"
        )
    lines += [
        f"idx = (nb[:, None] * {int(c_out)} + co[None, :]) * {plane} + pix[:, None]",
        f"mask = {mask}",
    ]
    store = ["tl.store(out_ptr + idx, acc.to(out_ptr.dtype.element_ty), mask=mask)"]
    return lines + epilogue_lines(epilogue, "idx", "acc", "mask", store)


def _depthwise(call: ExternCall, p: KernelParams, epilogue, v: dict) -> list[TritonKernel]:
    """One input and one output channel per group: a direct kernel over a
    BLOCK_M pixels x BLOCK_N channels tile, one multiply-add per tap (taps
    unrolled), pixels along the contiguous output rows."""
    kernel, live, ins, outs, sx, sw = (v[k] for k in ("kernel", "live", "ins", "outs", "sx", "sw"))
    stride, pad, dil = v["stride"], v["pad"], v["dil"]
    pixels, pixels_expr, plane, c_out = v["pixels"], v["pixels_expr"], v["plane"], v["c_out"]
    channels = int(c_out)
    BM = 128 if _int(pixels_expr) >= 128 else max(16, 1 << (_int(pixels_expr) - 1).bit_length())
    BN = min(32, max(1, 1 << (channels - 1).bit_length()))
    config = GemmConfig(BM, BN, 1, 1, 4, 1)
    body = [
        "pid_m = tl.program_id(0)",
        "pid_n = tl.program_id(1)",
        "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
        "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
    ]
    if v["wide"]:
        body += ["rm = rm.to(tl.int64)", "rn = rn.to(tl.int64)"]
    body += _pixel_coords(outs, live)
    body += [
        f"m_ok = rm < {pixels}",
        f"n_ok = rn < {channels}",
        "co = rn",
        f"x_base = nb[:, None] * {sx[0]} + rn[None, :] * {sx[1]}",
        f"w_base = rn * {sw[0]}",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
    ]
    import itertools

    for taps in itertools.product(*(range(k) for k in kernel)):
        offset, masks, w_offset = ["x_base"], ["m_ok[:, None]", "n_ok[None, :]"], ["w_base"]
        for d in range(3):
            if not live[d]:
                continue
            name = _DIMS[d]
            at = f"o{name} * {stride[d]}" if stride[d] != 1 else f"o{name}"
            shift = taps[d] * dil[d] - pad[d]
            coord = f"({at} + {shift})" if shift else at
            body.append(f"i{name} = {coord}")
            masks.append(f"((i{name} >= 0) & (i{name} < {ins[d]}))[:, None]")
            offset.append(f"(i{name} * {sx[2 + d]})[:, None]")
            if taps[d]:
                w_offset.append(f"{taps[d]} * {sw[2 + d]}")
        body += [
            f"xv = tl.load(x_ptr + {' + '.join(offset)}, mask={' & '.join(masks)}, other=0.0)",
            f"wv = tl.load(w_ptr + {' + '.join(w_offset)}, mask=n_ok, other=0.0)",
            "acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]",
        ]
    body += _bias_and_store(v["bias"], p, epilogue, c_out, plane, "m_ok[:, None] & n_ok[None, :]")
    constexprs = {"BLOCK_M": BM, "BLOCK_N": BN}
    grid = (cdiv(pixels_expr, BM), cdiv(sympy.Integer(channels), BN), sympy.Integer(1))
    if -(-channels // BN) > 65535:
        raise TritonCodegenError(f"convolution: {channels} depthwise channels exceed the grid")
    return [finish_kernel(call.name, p, epilogue, config, constexprs, body, grid, v["out"])]


TEMPLATES = {"convolution": generate_convolution}
