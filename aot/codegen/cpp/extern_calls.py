"""C++ call sites of extern kernels (aotc_cpu_kernels.h, aotc_cpu_pool.h).

emit_extern() turns one ExternKernel node into a function in the
calling convention of generated kernels (``int32_t name(const
aotc_rt::KernelContext& ctx)``) that takes its buffer pointers from
``ctx.buf[id]`` (plus the view's offset), prints sizes and strides with the
caller's |size_expr| and calls the templated kernel, returning its code.

[Note: extern kernel operands] What each kind expects from lowering
(aot/lowering/extern.py), so that this module only reads layouts:
- mm, addmm: inputs a [M, K], b [K, N] and for addmm bias as a view
  broadcast to [M, N] (stride 0 on broadcast dims); params alpha, beta.
- bmm: inputs a [B, M, K], b [B, K, N].
- convolution: inputs x [N, C, D, H, W] and weight as 5-D views (conv2d has
  a size-1 D dim added, conv1d D and H), optional 1-D bias; params stride,
  padding, dilation, output_padding (three values: depth, height, width),
  transposed, groups, spatial_dims (1 to 3); the output has the op's rank
  [N, Cout, *out], out being the last spatial_dims of the kernel's three.
- max_pool, avg_pool, adaptive_avg_pool, adaptive_max_pool: input x as a 5-D
  view [N, C, D, H, W] (an unbatched input has a size-1 N added, 2-D pooling
  a size-1 D); params dims (2 or 3: the output's last |dims| sizes are the
  spatial ones), kernel_size, stride, padding, dilation (three values) for the
  windowed kinds, ceil_mode, and count_include_pad and divisor_override
  (None, or any nonzero int) for avg_pool. max_pool and adaptive_max_pool have
  outputs (values, indices).
- max_pool_backward: inputs grad_output and indices (int64) as 5-D views as
  above; the output (grad_input) has the pooled input's sizes; params dims,
  op.
- sdpa: q, k, v as 4-D views [B, H, L, E] (k and v broadcast over q's batch
  dims with stride 0), optional mask as a 4-D view broadcast to
  [B, H, L, S]; params scale (None: 1/sqrt(E)), is_causal, has_mask; outputs
  (out) or (out, logsumexp).
Optional outputs (max pooling's indices, sdpa's logsumexp) that are missing
from |buffer_ids| are dead: the kernel gets nullptr and skips them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import sympy
import torch

from ...ir.nodes import Buffer, ExternKernel, ReinterpretView
from .kernel import EpilogueCode

EXTERN_HEADER = "aotc_cpu_kernels.h"

SizeExpr = Callable[[sympy.Expr], str]

_CTYPES = {
    torch.float32: "float",
    torch.float64: "double",
    torch.bfloat16: "aotc_rt::kernels::bf16",
    torch.bool: "bool",
    torch.int64: "int64_t",
    torch.int32: "int32_t",
    torch.int16: "int16_t",
    torch.int8: "int8_t",
    torch.uint8: "uint8_t",
}


def emit_extern(
    call_name: str,
    node: ExternKernel,
    buffer_ids: dict[str, int],
    size_expr: SizeExpr,
    debug_handle: str | None = None,
    epilogue: EpilogueCode | None = None,
) -> str:
    """The C++ source of ``static int32_t <call_name>(const
    aotc_rt::KernelContext& ctx)``, which runs |node|, behind a
    ``// <debug_handle>`` comment and the FX nodes it computes. |epilogue|
    (kernel.generate_epilogue) is passed to the kernel as its last argument
    ([Note: epilogue fusion])."""
    emitters = _all_emitters()
    emit = emitters.get(node.kind)
    if emit is None:
        known = ", ".join(sorted(emitters))
        raise ValueError(f"no C++ call for extern kernel kind {node.kind!r} (known: {known})")
    body = emit(Operands(node, buffer_ids, size_expr))
    if epilogue is not None:
        body = _with_epilogue(node, body, epilogue)
    header = [f"// {debug_handle}"] if debug_handle else []
    if node.origins:
        header.append(f"// origins: {', '.join(node.origins)}")
    lines = [
        *header,
        f"static int32_t {call_name}(const aotc_rt::KernelContext& ctx) {{",
        f"  // {_describe(node)}",
        "  namespace kn = aotc_rt::kernels;",
        f"  using T = {ctype_of(node.outputs[0].dtype)};",
        *(f"  {line}" for line in body),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _with_epilogue(node: ExternKernel, body: list[str], epilogue: EpilogueCode) -> list[str]:
    """|body| (ending ``return kn::<kernel>(...);``) calling the kernel with
    the epilogue functor, then returning the epilogue's status."""
    call = body[-1]
    if not (call.startswith("return kn::") and call.endswith(");")):
        raise ValueError(f"extern kind {node.kind!r} takes no epilogue (its call is {call!r})")
    invoke = call[len("return ") : -len(");")] + ", epilogue)"
    return [
        *body[:-1],
        *epilogue.setup,
        *epilogue.functor,
        f"if (const int32_t code = {invoke}; code != AOTC_ABI_OK) return code;",
        *epilogue.returns,
    ]


class Operands:
    """Reads a node's buffers, layouts and params as C++ text. Pointers are
    typed with the alias |ctype| ("T", or "M" for an attention mask) that
    the emitted function declares for the buffer's dtype."""

    def __init__(self, node: ExternKernel, buffer_ids: dict[str, int], size_expr: SizeExpr):
        self.node = node
        self.params = node.params
        self._ids = buffer_ids
        self._size_expr = size_expr

    def size(self, expr: sympy.Expr | int) -> str:
        return self._size_expr(sympy.sympify(expr))

    def sizes(self, value: Buffer | ReinterpretView) -> list[str]:
        return [self.size(s) for s in value.layout.sizes]

    def strides(self, value: Buffer | ReinterpretView) -> list[str]:
        return [self.size(s) for s in value.layout.strides]

    def input(self, k: int) -> Buffer | ReinterpretView:
        return self.node.inputs[k]

    def ptr(self, value: Buffer | ReinterpretView, ctype: str = "T") -> str:
        """A const pointer to |value|'s first element."""
        buffer = value.data if isinstance(value, ReinterpretView) else value
        text = f"static_cast<const {ctype}*>(ctx.buf[{self._ids[buffer.name]}])"
        offset = value.layout.offset
        return text if offset == 0 else f"{text} + {self.size(offset)}"

    def out_ptr(self, k: int, ctype: str = "T", optional: bool = False) -> str:
        buffer = self.node.outputs[k]
        if optional and buffer.name not in self._ids:
            return "nullptr"
        return f"static_cast<{ctype}*>(ctx.buf[{self._ids[buffer.name]}])"

    def tensor(self, name: str, value: Buffer | ReinterpretView, ctype: str = "T") -> str:
        """Declares |name| as a kn::TensorN view of |value| (of its rank)."""
        rank = len(value.layout.sizes)
        strides = ", ".join(self.strides(value))
        return (
            f"const kn::TensorN<{ctype}, {rank}> {name}{{{self.ptr(value, ctype)}, {{{strides}}}}};"
        )

    def tensor4(self, name: str, value: Buffer | ReinterpretView, ctype: str = "T") -> str:
        """Declares |name| as a kn::Tensor4 view of |value|."""
        if len(value.layout.sizes) != 4:
            raise ValueError(f"{self.node.name}: expected a 4-D operand, got {value.layout.sizes}")
        return self.tensor(name, value, ctype)

    def tensor5(self, name: str, value: Buffer | ReinterpretView, ctype: str = "T") -> str:
        """Declares |name| as a kn::Tensor5 view of |value|."""
        if len(value.layout.sizes) != 5:
            raise ValueError(f"{self.node.name}: expected a 5-D operand, got {value.layout.sizes}")
        return self.tensor(name, value, ctype)

    def dims3(self, sizes: Sequence[sympy.Expr | int]) -> str:
        """|sizes| (1 to 3 trailing spatial sizes) as a kn::Dims3 initializer,
        missing leading dims 1."""
        padded = [1] * (3 - len(sizes)) + list(sizes)
        return "{" + ", ".join(self.size(s) for s in padded) + "}"

    def matrix(self, name: str, value: Buffer | ReinterpretView | None) -> str:
        """Declares |name| as a kn::Matrix view of |value| (2-D: batch stride 0)."""
        if value is None:
            return f"const kn::Matrix<T> {name}{{nullptr, 0, 0, 0}};"
        strides = self.strides(value)
        if len(strides) == 2:
            strides = ["0", *strides]
        return f"const kn::Matrix<T> {name}{{{self.ptr(value)}, {', '.join(strides)}}};"


def ctype_of(dtype: torch.dtype) -> str:
    ctype = _CTYPES.get(dtype)
    if ctype is None:
        raise ValueError(f"extern kernels do not support {dtype}")
    return ctype


def _float(value: float) -> str:
    """A float literal (inf and nan included)."""
    value = float(value)
    if math.isnan(value):
        return "std::numeric_limits<float>::quiet_NaN()"
    if math.isinf(value):
        return f"{'-' if value < 0 else ''}std::numeric_limits<float>::infinity()"
    return f"{value!r}f"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _describe(node: ExternKernel) -> str:
    def name(value: Buffer | ReinterpretView) -> str:
        buffer = value.data if isinstance(value, ReinterpretView) else value
        return f"{buffer.name}{list(value.layout.sizes)}"

    ins = ", ".join(name(v) for v in node.inputs)
    outs = ", ".join(name(b) for b in node.outputs)
    return f"{node.name}: {node.kind}({ins}) -> {outs}"


# -- one emitter per kind --------------------------------------------------------


def _emit_gemm(ops: Operands) -> list[str]:
    node = ops.node
    a, b = ops.input(0), ops.input(1)
    batch = ops.size(a.layout.sizes[0]) if len(a.layout.sizes) == 3 else "1"
    m, k = (ops.size(s) for s in a.layout.sizes[-2:])
    n = ops.size(b.layout.sizes[-1])
    alpha = _float(ops.params.get("alpha", 1.0))
    beta = _float(ops.params.get("beta", 0.0))
    return [
        ops.matrix("a", a),
        ops.matrix("b", b),
        ops.matrix("bias", ops.input(2) if len(node.inputs) > 2 else None),
        f"T* out = {ops.out_ptr(0)};",
        "// batch, M, N, K, A, B, bias, alpha, beta, out",
        f"return kn::gemm<T>(ctx, {batch}, {m}, {n}, {k}, a, b, bias, {alpha}, {beta}, out);",
    ]


def _emit_convolution(ops: Operands) -> list[str]:
    node, params = ops.node, ops.params
    x, w = ops.input(0), ops.input(1)
    n, c_in, *in_sizes = x.layout.sizes
    out_sizes = node.outputs[0].layout.sizes
    if len(node.inputs) > 2:
        bias, bias_stride = ops.ptr(ops.input(2)), ops.strides(ops.input(2))[0]
    else:
        bias, bias_stride = "nullptr", "0"
    return [
        "kn::ConvNdShape shape;",
        f"shape.n = {ops.size(n)};",
        f"shape.c_in = {ops.size(c_in)};",
        f"shape.c_out = {ops.size(out_sizes[1])};",
        f"shape.groups = {params['groups']};",
        "// depth, height, width",
        f"shape.in = {ops.dims3(in_sizes)};",
        f"shape.out = {ops.dims3(out_sizes[2:])};",
        f"shape.kernel = {ops.dims3(w.layout.sizes[2:])};",
        f"shape.stride = {ops.dims3(params['stride'])};",
        f"shape.pad = {ops.dims3(params['padding'])};",
        f"shape.dil = {ops.dims3(params['dilation'])};",
        f"shape.transposed = {_bool(params['transposed'])};",
        ops.tensor5("x", x),
        ops.tensor5("w", w),
        f"const T* bias = {bias};",
        f"T* out = {ops.out_ptr(0)};",
        f"return kn::conv<T>(ctx, shape, x, w, bias, {bias_stride}, out);",
    ]


def _pool_shape(ops: Operands, out_sizes: Sequence[sympy.Expr], windowed: bool) -> list[str]:
    """Declares kn::PoolNdShape shape for input 0 and |out_sizes| (the spatial
    ones); the window params when |windowed| (average pooling: dilation 1)."""
    params = ops.params
    n, c, *in_sizes = ops.input(0).layout.sizes
    lines = [
        "kn::PoolNdShape shape{};",
        f"shape.n = {ops.size(n)};",
        f"shape.c = {ops.size(c)};",
        "// depth, height, width",
        f"shape.in = {ops.dims3(in_sizes)};",
        f"shape.out = {ops.dims3(out_sizes)};",
    ]
    if windowed:
        lines += [
            f"shape.kernel = {ops.dims3(params['kernel_size'])};",
            f"shape.stride = {ops.dims3(params['stride'])};",
            f"shape.pad = {ops.dims3(params['padding'])};",
            f"shape.dil = {ops.dims3(params.get('dilation', [1, 1, 1]))};",
        ]
    return lines


def _spatial_out(ops: Operands, k: int = 0) -> list[sympy.Expr]:
    """Output |k|'s spatial sizes (its last params["dims"])."""
    return list(ops.node.outputs[k].layout.sizes[-ops.params["dims"] :])


def _emit_max_pool(ops: Operands) -> list[str]:
    has_indices = len(ops.node.outputs) > 1
    indices = ops.out_ptr(1, "int64_t", optional=True) if has_indices else "nullptr"
    return [
        *_pool_shape(ops, _spatial_out(ops), windowed=True),
        ops.tensor5("x", ops.input(0)),
        f"T* out = {ops.out_ptr(0)};",
        f"int64_t* indices = {indices};",
        "return kn::max_pool<T>(ctx, shape, x, out, indices);",
    ]


def _emit_avg_pool(ops: Operands) -> list[str]:
    params = ops.params
    divisor = int(params.get("divisor_override") or 0)
    include_pad = _bool(params["count_include_pad"])
    return [
        *_pool_shape(ops, _spatial_out(ops), windowed=True),
        ops.tensor5("x", ops.input(0)),
        f"T* out = {ops.out_ptr(0)};",
        "// count_include_pad, divisor_override (0: none)",
        f"return kn::avg_pool<T>(ctx, shape, {include_pad}, {divisor}, x, out);",
    ]


def _emit_adaptive_avg_pool(ops: Operands) -> list[str]:
    return [
        *_pool_shape(ops, _spatial_out(ops), windowed=False),
        ops.tensor5("x", ops.input(0)),
        f"T* out = {ops.out_ptr(0)};",
        "return kn::adaptive_avg_pool<T>(ctx, shape, x, out);",
    ]


def _emit_adaptive_max_pool(ops: Operands) -> list[str]:
    has_indices = len(ops.node.outputs) > 1
    indices = ops.out_ptr(1, "int64_t", optional=True) if has_indices else "nullptr"
    return [
        *_pool_shape(ops, _spatial_out(ops), windowed=False),
        ops.tensor5("x", ops.input(0)),
        f"T* out = {ops.out_ptr(0)};",
        f"int64_t* indices = {indices};",
        "return kn::adaptive_max_pool<T>(ctx, shape, x, out, indices);",
    ]


def _emit_max_pool_backward(ops: Operands) -> list[str]:
    grad_output, indices = ops.input(0), ops.input(1)
    n, c, *out_sizes = grad_output.layout.sizes
    handle = f'"{ops.node.name}:0"'
    return [
        ops.tensor5("grad_output", grad_output),
        ops.tensor5("indices", indices, "int64_t"),
        f"T* grad_input = {ops.out_ptr(0)};",
        f"const kn::Dims3 in = {ops.dims3(_spatial_out(ops))};",
        f"const kn::Dims3 out = {ops.dims3(out_sizes)};",
        "// handle, n, c, in, out, grad_output, indices, grad_input",
        f"return kn::max_pool_backward<T>(ctx, {handle}, {ops.size(n)}, {ops.size(c)}, in, out,"
        " grad_output, indices, grad_input);",
    ]


def _emit_sdpa(ops: Operands) -> list[str]:
    node, params = ops.node, ops.params
    q, k, v = ops.input(0), ops.input(1), ops.input(2)
    b, h, q_len, e = ops.sizes(q)
    kv_heads, kv_len = ops.sizes(k)[1:3]
    scale = params.get("scale")
    if scale is None:  # as eager: computed in double, used as float
        scale_text = f"static_cast<float>(1.0 / std::sqrt(static_cast<double>({e})))"
    elif math.isfinite(scale):
        scale_text = f"static_cast<float>({float(scale)!r})"
    else:
        scale_text = _float(scale)
    if params.get("has_mask", False):
        mask = ops.input(3)
        mask_lines = [f"using M = {ctype_of(mask.dtype)};", ops.tensor4("mask", mask, "M")]
    else:
        mask_lines = ["using M = T;", "const kn::Tensor4<M> mask{nullptr, {0, 0, 0, 0}};"]
    lse = ops.out_ptr(1, "float", optional=True) if len(node.outputs) > 1 else "nullptr"
    return [
        "kn::SdpaShape shape;",
        f"shape.batch = {b};",
        f"shape.heads = {h};",
        f"shape.kv_heads = {kv_heads};",
        f"shape.q_len = {q_len};",
        f"shape.kv_len = {kv_len};",
        f"shape.head_dim = {e};",
        f"shape.v_dim = {ops.sizes(v)[3]};",
        f"shape.scale = {scale_text};",
        f"shape.causal = {_bool(params.get('is_causal', False))};",
        ops.tensor4("q", q),
        ops.tensor4("k", k),
        ops.tensor4("v", v),
        *mask_lines,
        f"T* out = {ops.out_ptr(0)};",
        f"float* lse = {lse};",
        "return kn::sdpa<T, M>(ctx, shape, q, k, v, mask, out, lse);",
    ]


_EMITTERS: dict[str, Callable[[Operands], list[str]]] = {
    "mm": _emit_gemm,
    "addmm": _emit_gemm,
    "bmm": _emit_gemm,
    "convolution": _emit_convolution,
    "max_pool": _emit_max_pool,
    "avg_pool": _emit_avg_pool,
    "adaptive_avg_pool": _emit_adaptive_avg_pool,
    "adaptive_max_pool": _emit_adaptive_max_pool,
    "max_pool_backward": _emit_max_pool_backward,
    "sdpa": _emit_sdpa,
}


def _all_emitters() -> dict[str, Callable[[Operands], list[str]]]:
    """This module's emitters plus each extern family's (scan, sort, scatter):
    a family module defines EMITTERS keyed by kind. Imported lazily since the
    families import Operands from here."""
    from . import extern_scan, extern_scatter, extern_sort

    table = dict(_EMITTERS)
    for family in (extern_scan, extern_sort, extern_scatter):
        for kind, emit in family.EMITTERS.items():
            if kind in table:
                raise ValueError(f"extern kind {kind!r} has two emitters")
            table[kind] = emit
    return table
