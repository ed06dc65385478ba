"""Triton templates for pooling: max_pool (with indices), avg_pool,
adaptive_avg_pool, adaptive_max_pool and max_pool_backward, over one to three
spatial dims. Semantics are the CPU kernels' (aotc_cpu_pool.h); operands as
[Note: extern kernel operands] in aot/codegen/cpp/extern_calls.py.

[Note: GPU pooling] Pooling is memory bound and its windows are small, so
each lane computes one output element: programs take BLOCK consecutive
elements of the contiguous output (coalesced stores; neighbouring lanes read
neighbouring input columns), decompose the flat index into (n, c, od, oh, ow)
with compiled-in sizes and walk the window in row-major order, in float32.
- 2-D pooling (depth 1 throughout) gets no depth loop or depth index math;
  windows of up to 64 taps are unrolled (tl.static_range), larger ones loop.
- Index math is int32 when every static extent fits, int64 otherwise (or
  when a size is a run-time value: size args are int64).
- max_pool_backward adds grad_output into a zeroed grad_input with atomics
  (two launches), so overlapping windows' sums are float32 in float32
  outputs but add in the output dtype for bf16/fp16 ones, in any order: the
  CPU kernel sums a plane in float32 and rounds once. An index outside the
  plane (but -1, skipped as eager) is reported per [Note: GPU index checks].
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch

from ....ir.symbols import FloorDiv
from ..context import INDEX_ERRORS, TritonContext, TritonEpilogue
from ..launch import TritonArg, TritonCodegenError, TritonKernel
from .attention import KernelSignature

_BLOCK = 256
_WARPS = 4
_UNROLL_TAPS = 64
_INT32_LIMIT = 2**31
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

_HEADER = """
import triton
import triton.language as tl
"""


def _sym(x: sympy.Expr | int) -> sympy.Expr:
    return sympy.sympify(x)


def _fits_int32(*extents: sympy.Expr) -> bool:
    """Whether every extent is static and below 2^31 (int32 index math)."""
    return all(e.is_Integer and int(e) < _INT32_LIMIT for e in map(_sym, extents))


def _extent(sizes: Sequence[sympy.Expr], strides: Sequence[sympy.Expr]) -> sympy.Expr:
    return 1 + sum((_sym(s) - 1) * abs(_sym(t)) for s, t in zip(sizes, strides, strict=True))


class _Pool:
    """One pooling launch being built: the input and output shapes, the
    signature and the source's shared parts."""

    def __init__(self, call: object, what: str) -> None:
        self.call = call
        self.node = call.node
        self.what = what
        self.x = self.node.inputs[0]
        if self.x.dtype not in _DTYPES:
            raise TritonCodegenError(f"{what}: no GPU kernel for {self.x.dtype}")
        n, c, *in_sizes = self.x.layout.sizes
        dims = int(self.node.params["dims"])
        out_spatial = list(self.node.outputs[0].layout.sizes[-dims:])
        self.n, self.c = _sym(n), _sym(c)
        self.in_sizes = [_sym(s) for s in in_sizes]
        self.out_sizes = [sympy.Integer(1)] * (3 - dims) + [_sym(s) for s in out_spatial]
        # Depth 1 in, out and window: 2-D (or 1-D) pooling, no depth loop.
        self.deep = not (self.in_sizes[0] == 1 and self.out_sizes[0] == 1)
        self.total = self.n * self.c * self.out_sizes[0] * self.out_sizes[1] * self.out_sizes[2]
        self.sig = KernelSignature()

    def setup(self) -> None:
        """Size args shared by the forward kinds (after the caller's own
        pointers) and the index type."""
        sig = self.sig
        sig.size("TOTAL", self.total)
        sig.size("C", self.c)
        for name, size in zip(("ID", "IH", "IW"), self.in_sizes, strict=True):
            sig.size(name, size)
        for name, size in zip(("OD", "OH", "OW"), self.out_sizes, strict=True):
            sig.size(name, size)
        for i, stride in enumerate(self.x.layout.strides):
            sig.size(f"sx{i}", stride)
        plane = self.in_sizes[0] * self.in_sizes[1] * self.in_sizes[2]
        wide = not _fits_int32(
            _extent(self.x.layout.sizes, self.x.layout.strides), self.total + _BLOCK, plane
        )
        self.index_type = "tl.int64" if wide else "tl.int32"

    def prologue(self) -> list[str]:
        """Lines that decompose each lane's flat output index."""
        pid = (
            "tl.program_id(0).to(tl.int64)" if self.index_type == "tl.int64" else "tl.program_id(0)"
        )
        lines = [
            f"offs = {pid} * BLOCK + tl.arange(0, BLOCK)",
            "ok = offs < TOTAL",
            "ow = offs % OW",
            "t = offs // OW",
            "oh = t % OH",
            "t = t // OH",
        ]
        if self.deep:
            lines += ["od = t % OD", "t = t // OD"]
        lines += ["c = t % C", "n = t // C", "x_base = X + n * sx0 + c * sx1"]
        return lines

    def kernel(self, body: list[str], extra: dict[str, int | bool] | None = None) -> TritonKernel:
        self.sig.constant("BLOCK", _BLOCK)
        for key, value in (extra or {}).items():
            self.sig.constant(key, value)
        name = self.call.name
        lines = [
            _HEADER,
            "",
            "@triton.jit",
            f"def {name}({self.sig.parameters()}):",
            *(f"    {line}" for line in [*self.prologue(), *body]),
        ]
        return TritonKernel(
            name=name,
            source="\n".join(lines) + "\n",
            args=self.sig.args,
            grid=(FloorDiv(self.total + _BLOCK - 1, _BLOCK), sympy.Integer(1), sympy.Integer(1)),
            constexprs=self.sig.constexprs,
            num_warps=_WARPS,
            num_stages=1,
            writes={b.name for b in self.node.outputs},
        )


def _taps(kernel: Sequence[int]) -> str:
    """The loop of a window of |kernel| taps: unrolled when small."""
    taps = kernel[0] * kernel[1] * kernel[2]
    return "tl.static_range" if taps <= _UNROLL_TAPS else "range"


def _window_loops(deep: bool, loop: str, inner: list[str]) -> list[str]:
    """Loops over the window's taps (kz, ky, kx) around |inner|, with each
    tap's input position (id, ih, iw) and whether it is inside (inside)."""
    lines: list[str] = []
    indent = ""
    if deep:
        lines += [
            f"for kz in {loop}(KD):",
            "    id = id0 + kz * DD",
            "    ok_d = ok & (id >= 0) & (id < ID)",
        ]
        indent = "    "
    else:
        lines += ["id = 0", "ok_d = ok"]
    lines += [
        f"{indent}for ky in {loop}(KH):",
        f"{indent}    ih = ih0 + ky * DH",
        f"{indent}    ok_h = ok_d & (ih >= 0) & (ih < IH)",
        f"{indent}    for kx in {loop}(KW):",
        f"{indent}        iw = iw0 + kx * DW",
        f"{indent}        inside = ok_h & (iw >= 0) & (iw < IW)",
        f"{indent}        ptrs = x_base + id * sx2 + ih * sx3 + iw * sx4",
    ]
    lines += [f"{indent}        {line}" for line in inner]
    return lines


def _window_params(pool: _Pool, params: dict, dilation: bool) -> list[int]:
    kernel = [int(k) for k in params["kernel_size"]]
    stride = [int(s) for s in params["stride"]]
    pad = [int(p) for p in params["padding"]]
    dil = [int(d) for d in params.get("dilation", [1, 1, 1])] if dilation else [1, 1, 1]
    if min(kernel) <= 0 or min(stride) <= 0 or min(dil) <= 0 or min(pad) < 0:
        raise TritonCodegenError(
            f"{pool.what}: kernel size, stride and dilation must be > 0 and padding >= 0"
        )
    if kernel[0] != 1 or pad[0] != 0:
        pool.deep = True
    for name, value in zip(("KD", "KH", "KW"), kernel, strict=True):
        pool.sig.constant(name, value)
    for name, value in zip(("SD", "SH", "SW"), stride, strict=True):
        pool.sig.constant(name, value)
    for name, value in zip(("PD", "PH", "PW"), pad, strict=True):
        pool.sig.constant(name, value)
    for name, value in zip(("DD", "DH", "DW"), dil, strict=True):
        pool.sig.constant(name, value)
    return kernel


def _first_inside(start: str, dil: str) -> str:
    """The first position >= 0 of a dilated window from |start| (eager's
    index for a window without a winner)."""
    return f"tl.where({start} < 0, {start} + ((-{start} + {dil} - 1) // {dil}) * {dil}, {start})"


def max_pool_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """Max pooling as the CPU kernel: row-major window, an element wins when
    `v > best or v is NaN`, its plane index (id*IH + ih)*IW + iw goes to the
    indices output; a window without a winner reports its first in-bounds
    position."""
    _no_epilogue("max_pool", epilogue)
    pool = _Pool(call, "max_pool")
    pool.sig.pointer("X", pool.x)
    pool.sig.pointer("Out", pool.node.outputs[0])
    has_indices = len(pool.node.outputs) > 1
    if has_indices:
        pool.sig.pointer("Idx", pool.node.outputs[1])
    kernel = _window_params(pool, pool.node.params, dilation=True)
    pool.setup()
    body = [
        "id0 = od * SD - PD" if pool.deep else "",
        "ih0 = oh * SH - PH",
        "iw0 = ow * SW - PW",
        "best = tl.full([BLOCK], float('-inf'), tl.float32)",
    ]
    inner = [
        "v = tl.load(ptrs, mask=inside, other=float('-inf')).to(tl.float32)",
        "take = inside & ((v > best) | (v != v))",
        "best = tl.where(take, v, best)",
    ]
    if has_indices:
        first_d = _first_inside("id0", "DD") if pool.deep else "0"
        body.append(
            f"where = ({first_d} * IH + {_first_inside('ih0', 'DH')}) * IW + "
            f"{_first_inside('iw0', 'DW')}"
        )
        inner.append("where = tl.where(take, (id * IH + ih) * IW + iw, where)")
    body += _window_loops(pool.deep, _taps(kernel), inner)
    body.append("tl.store(Out + offs, best.to(Out.dtype.element_ty), mask=ok)")
    if has_indices:
        body.append("tl.store(Idx + offs, where.to(tl.int64), mask=ok)")
    return [pool.kernel([line for line in body if line])]


def avg_pool_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """Average pooling as the CPU kernel: the window clipped to the padded
    input, then to the input; the divisor is divisor_override when set, else
    the padded window size (count_include_pad) or the clipped one; an empty
    window gives 0. Sums row-major in float32."""
    _no_epilogue("avg_pool", epilogue)
    pool = _Pool(call, "avg_pool")
    params = pool.node.params
    pool.sig.pointer("X", pool.x)
    pool.sig.pointer("Out", pool.node.outputs[0])
    kernel = _window_params(pool, params, dilation=False)
    pool.setup()
    body: list[str] = []
    axes = "dhw" if pool.deep else "hw"
    for axis in axes:
        out, dim = f"o{axis}", axis.upper()
        body += [
            f"i{axis}0 = {out} * S{dim} - P{dim}",
            f"end_{axis} = tl.minimum(i{axis}0 + K{dim}, I{dim} + P{dim})",
            f"pad_{axis} = end_{axis} - i{axis}0",
            f"len_{axis} = tl.minimum(end_{axis}, I{dim}) - tl.maximum(i{axis}0, 0)",
        ]
    body.append("total = tl.zeros([BLOCK], tl.float32)")
    inner = ["total += tl.load(ptrs, mask=inside, other=0.0).to(tl.float32)"]
    body += _window_loops(pool.deep, _taps(kernel), inner)
    divisor = int(params.get("divisor_override") or 0)
    if divisor != 0:
        body.append(f"divisor = {float(divisor)!r}")
    else:
        what = "pad" if params["count_include_pad"] else "len"
        body.append(f"divisor = ({' * '.join(f'{what}_{a}' for a in axes)}).to(tl.float32)")
    body += [
        f"empty = {' | '.join(f'(len_{a} <= 0)' for a in axes)}",
        "value = tl.where(empty, 0.0, total / divisor)",
        "tl.store(Out + offs, value.to(Out.dtype.element_ty), mask=ok)",
    ]
    return [pool.kernel(body)]


def _adaptive_window(pool: _Pool) -> list[str]:
    """Each lane's adaptive window [lo, hi) per dim, as eager: output o of
    |out| covers input [floor(o*in/out), ceil((o+1)*in/out)); and the most
    taps any window has along each dim (KD, KH, KW)."""
    lines: list[str] = []
    axes = [("d", "od", "D"), ("h", "oh", "H"), ("w", "ow", "W")]
    for axis, out, dim in axes:
        size_in, size_out = pool.in_sizes["dhw".index(axis)], pool.out_sizes["dhw".index(axis)]
        if axis == "d" and not pool.deep:
            lines += ["lo_d = 0", "hi_d = 1"]
            pool.sig.constant("KD", 1)
            continue
        lines += [
            f"lo_{axis} = ({out} * I{dim}) // O{dim}",
            f"hi_{axis} = (({out} + 1) * I{dim} + O{dim} - 1) // O{dim}",
        ]
        pool.sig.size(f"K{dim}", _adaptive_taps(size_in, size_out))
    return lines


def _adaptive_taps(size_in: sympy.Expr, size_out: sympy.Expr) -> sympy.Expr:
    """The longest adaptive window along a dim: exact when static, else the
    bound ceil(in/out) + 1."""
    if size_in.is_Integer and size_out.is_Integer:
        i, o = int(size_in), int(size_out)
        if o <= 0:
            return sympy.Integer(0)
        return sympy.Integer(max(((k + 1) * i + o - 1) // o - (k * i) // o for k in range(o)))
    return FloorDiv(size_in + size_out - 1, size_out) + 1


def _adaptive_loops(pool: _Pool, loop: str, inner: list[str]) -> list[str]:
    """Loops over an adaptive window's taps with the positions id, ih, iw."""
    lines: list[str] = []
    indent = ""
    if pool.deep:
        lines += [
            f"for kz in {loop}(KD):",
            "    id = lo_d + kz",
            "    ok_d = ok & (id < hi_d)",
        ]
        indent = "    "
    else:
        lines += ["id = 0", "ok_d = ok"]
    lines += [
        f"{indent}for ky in {loop}(KH):",
        f"{indent}    ih = lo_h + ky",
        f"{indent}    ok_h = ok_d & (ih < hi_h)",
        f"{indent}    for kx in {loop}(KW):",
        f"{indent}        iw = lo_w + kx",
        f"{indent}        inside = ok_h & (iw < hi_w)",
        f"{indent}        ptrs = x_base + id * sx2 + ih * sx3 + iw * sx4",
    ]
    return lines + [f"{indent}        {line}" for line in inner]


def _adaptive_loop_kind(pool: _Pool) -> str:
    taps = [pool.sig.constexprs.get(k) for k in ("KD", "KH", "KW")]
    if any(t is None for t in taps) or taps[0] * taps[1] * taps[2] > _UNROLL_TAPS:
        return "range"
    return "tl.static_range"


def adaptive_avg_pool_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """Adaptive average pooling: each window's float32 sum (row-major) / kd /
    kh / kw, as the CPU kernel."""
    _no_epilogue("adaptive_avg_pool", epilogue)
    pool = _Pool(call, "adaptive_avg_pool")
    pool.sig.pointer("X", pool.x)
    pool.sig.pointer("Out", pool.node.outputs[0])
    pool.setup()
    body = _adaptive_window(pool)
    body.append("total = tl.zeros([BLOCK], tl.float32)")
    inner = ["total += tl.load(ptrs, mask=inside, other=0.0).to(tl.float32)"]
    body += _adaptive_loops(pool, _adaptive_loop_kind(pool), inner)
    if pool.deep:  # (else exactly / 1)
        body.append("total = total / (hi_d - lo_d).to(tl.float32)")
    body += [
        "total = total / (hi_h - lo_h).to(tl.float32) / (hi_w - lo_w).to(tl.float32)",
        "tl.store(Out + offs, total.to(Out.dtype.element_ty), mask=ok)",
    ]
    return [pool.kernel(body)]


def adaptive_max_pool_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """Adaptive max pooling over the same windows: the first maximum wins, a
    NaN always replaces the running value; indices (id*IH + ih)*IW + iw."""
    _no_epilogue("adaptive_max_pool", epilogue)
    pool = _Pool(call, "adaptive_max_pool")
    pool.sig.pointer("X", pool.x)
    pool.sig.pointer("Out", pool.node.outputs[0])
    has_indices = len(pool.node.outputs) > 1
    if has_indices:
        pool.sig.pointer("Idx", pool.node.outputs[1])
    pool.setup()
    body = _adaptive_window(pool)
    body += [
        "best = tl.full([BLOCK], float('-inf'), tl.float32)",
        "where = (lo_d * IH + lo_h) * IW + lo_w",
    ]
    inner = [
        "v = tl.load(ptrs, mask=inside, other=float('-inf')).to(tl.float32)",
        "take = inside & ((v > best) | (v != v))",
        "best = tl.where(take, v, best)",
        "where = tl.where(take, (id * IH + ih) * IW + iw, where)",
    ]
    body += _adaptive_loops(pool, _adaptive_loop_kind(pool), inner)
    body.append("tl.store(Out + offs, best.to(Out.dtype.element_ty), mask=ok)")
    if has_indices:
        body.append("tl.store(Idx + offs, where.to(tl.int64), mask=ok)")
    return [pool.kernel(body)]


def max_pool_backward_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """grad_input = 0, then grad_input[n, c].flat[indices[n, c, o]] +=
    grad_output[n, c, o] ([Note: GPU pooling]: atomics, any order)."""
    _no_epilogue("max_pool_backward", epilogue)
    node = call.node
    grad_output, indices = node.inputs[0], node.inputs[1]
    grad_input = node.outputs[0]
    dtype = grad_output.dtype
    if dtype not in _DTYPES:
        raise TritonCodegenError(f"max_pool_backward: no GPU kernel for {dtype}")
    dims = int(node.params["dims"])
    n, c, *out_sizes = (_sym(s) for s in grad_output.layout.sizes)
    in_spatial = [_sym(s) for s in grad_input.layout.sizes[-dims:]]
    plane = sympy.Integer(1)
    for s in in_spatial:
        plane = plane * s
    out_plane = out_sizes[0] * out_sizes[1] * out_sizes[2]
    numel = n * c * plane
    total = n * c * out_plane
    wide = not _fits_int32(
        numel + _BLOCK,
        total + _BLOCK,
        _extent(grad_output.layout.sizes, grad_output.layout.strides),
        _extent(indices.layout.sizes, indices.layout.strides),
    )
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"

    zero = KernelSignature()
    zero.pointer("GradIn", grad_input)
    zero.size("NUMEL", numel)
    zero.constant("BLOCK", 1024)
    zero_name = f"{call.name}_zero"
    zero_body = [
        f"offs = {pid} * BLOCK + tl.arange(0, BLOCK)",
        "tl.store(GradIn + offs, tl.zeros([BLOCK], GradIn.dtype.element_ty), mask=offs < NUMEL)",
    ]

    sig = KernelSignature()
    sig.pointer("GradOut", grad_output)
    sig.pointer("Indices", indices)
    sig.pointer("GradIn", grad_input)
    sig.args.append(TritonArg("Errors", "pointer", buffer=INDEX_ERRORS, dtype=torch.int64))
    sig.size("TOTAL", total)
    sig.size("C", c)
    sig.size("PLANE", plane)
    for name, size in zip(("OD", "OH", "OW"), out_sizes, strict=True):
        sig.size(name, size)
    for prefix, view in (("sg", grad_output), ("si", indices)):
        for i, stride in enumerate(view.layout.strides):
            sig.size(f"{prefix}{i}", stride)
    sig.constant("BLOCK", _BLOCK)
    scatter_name = f"{call.name}_scatter"
    scatter_body = [
        f"offs = {pid} * BLOCK + tl.arange(0, BLOCK)",
        "ok = offs < TOTAL",
        "ow = offs % OW",
        "t = offs // OW",
        "oh = t % OH",
        "t = t // OH",
        "od = t % OD",
        "t = t // OD",
        "c = t % C",
        "n = t // C",
        "g = tl.load(GradOut + n * sg0 + c * sg1 + od * sg2 + oh * sg3 + ow * sg4, mask=ok)",
        "i_ptrs = Indices + n * si0 + c * si1 + od * si2 + oh * si3 + ow * si4",
        "i = tl.load(i_ptrs, mask=ok, other=-1)",
        "# -1 (no maximum) is skipped, as eager; anything else outside the plane",
        "# is reported ([Note: GPU index checks]) and skipped.",
        "bad = ok & (i != -1) & ((i < 0) | (i >= PLANE))",
        "if tl.max(bad.to(tl.int32), 0) != 0:",
        "    # The first program to claim the slots records one of its bad indices.",
        "    if tl.atomic_cas(Errors, tl.full([], 0, tl.int64), tl.full([], 1, tl.int64)) == 0:",
        "        value = tl.max(tl.where(bad, i, -9223372036854775807 - 1), 0)",
        "        tl.store(Errors + 1, value.to(tl.int64))",
        "        tl.store(Errors + 2, tl.full([], PLANE, tl.int64))",
        "        tl.store(Errors + 3, tl.full([], 0, tl.int64))",
        "use = ok & (i >= 0) & (i < PLANE)",
        "tl.atomic_add(GradIn + (n * C + c) * PLANE + i, g, mask=use, sem='relaxed')",
    ]

    def launch(name: str, s: KernelSignature, body: list[str], grid: sympy.Expr) -> TritonKernel:
        source = "\n".join(
            [
                _HEADER,
                "",
                "@triton.jit",
                f"def {name}({s.parameters()}):",
                *(f"    {b}" for b in body),
            ]
        )
        return TritonKernel(
            name=name,
            source=source + "\n",
            args=s.args,
            grid=(grid, sympy.Integer(1), sympy.Integer(1)),
            constexprs=s.constexprs,
            num_warps=_WARPS,
            writes={grad_input.name},
        )

    scatter = launch(scatter_name, sig, scatter_body, FloorDiv(total + _BLOCK - 1, _BLOCK))
    scatter.index_checks = ["max pooling backward: indices"]
    return [
        launch(zero_name, zero, zero_body, FloorDiv(numel + 1023, 1024)),
        scatter,
    ]


def _no_epilogue(kind: str, epilogue: TritonEpilogue | None) -> None:
    if epilogue is not None:
        raise TritonCodegenError(f"{kind} takes no fused epilogue")


TEMPLATES = {
    "max_pool": max_pool_template,
    "avg_pool": avg_pool_template,
    "adaptive_avg_pool": adaptive_avg_pool_template,
    "adaptive_max_pool": adaptive_max_pool_template,
    "max_pool_backward": max_pool_backward_template,
}
