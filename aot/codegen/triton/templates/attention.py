"""Triton template for scaled_dot_product_attention ("sdpa"): a flash-attention
forward kernel. Semantics are the CPU kernel's (aotc_cpu_attention.h, sdpa);
operands as [Note: extern kernel operands] in aot/codegen/cpp/extern_calls.py.

[Note: GPU attention] One program computes a block of BLOCK_M query rows of
one (batch, head) and walks the keys in blocks of BLOCK_N with an online
softmax (running max m, sum l and output acc per row, all float32); the
L x S score matrix never exists.
- Products: q @ k^T and p @ v are tl.dot on tensor cores for bf16/fp16
  (p rounded to the value dtype first, as flash attention does), in "ieee"
  precision for float32 (torch's default: no TF32).
- Softmax in base 2: scores are multiplied by scale * log2(e) so exp is
  exp2; the additive mask is scaled by log2(e) too. The logsumexp output is
  (m + log2 l) * ln 2, in natural units as the CPU kernel's.
- Masking: keys past S, keys past a row's diagonal (causal, top-left aligned
  like eager: row i sees keys j <= i), false bool-mask positions and -inf
  additive ones score -inf. A row whose scores are all -inf (fully masked)
  keeps m = -inf, so exp2 shifts by 0 instead (every p is 0); its output is 0
  and its logsumexp -inf, as the CPU kernel's.
- Key blocks that need no per-element masking (below the causal diagonal,
  before the ragged end of S) run in a first loop without it; the blocks
  that cross the diagonal or S's end run in a second loop with it.
- Programs: one axis of cdiv(L, BLOCK_M) * B * H programs (no 65535 limit),
  query blocks fastest so the programs running together share K and V
  through L2 (the query heads of a GQA group too: heads are next fastest);
  for causal attention the last (longest) query blocks start first.
- Index arithmetic: per-(batch, head) bases in int64, offsets inside a head
  in int32 when every static extent fits (checked), int64 when a stride or
  size is a run-time value (size args are int64).
"""

from __future__ import annotations

import math

import sympy
import torch

from ....ir.nodes import ReinterpretView
from ....ir.symbols import FloorDiv
from ..context import TritonContext, TritonEpilogue
from ..launch import TritonArg, TritonCodegenError, TritonKernel

_INT32_LIMIT = 2**31
_MAX_HEAD_DIM = 256
_SIXTEEN_BIT = (torch.bfloat16, torch.float16)


class KernelSignature:
    """A template kernel's parameters in order: pointer and run-time size args
    (|args|) and compiled-in values (|constexprs|), per [Note: Triton
    launches]. A size that is a plain integer is compiled in; any other
    expression becomes a "size" arg the wrapper evaluates per run."""

    def __init__(self) -> None:
        self.args: list[TritonArg] = []
        self.constexprs: dict[str, int | float | bool] = {}

    def pointer(self, name: str, value: object, dtype: torch.dtype | None = None) -> None:
        """|value| a Buffer or ReinterpretView: its buffer plus the view's offset."""
        layout = value.layout
        # A ComputedBuffer has .data too (its loop body): only a view's is a buffer.
        data = value.data if isinstance(value, ReinterpretView) else value
        self.args.append(
            TritonArg(
                name,
                "pointer",
                buffer=data.name,
                dtype=dtype or data.dtype,
                offset=sympy.sympify(layout.offset),
            )
        )

    def size(self, name: str, expr: sympy.Expr | int) -> None:
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            self.constexprs[name] = int(expr)
        else:
            self.args.append(TritonArg(name, "size", value=expr))

    def constant(self, name: str, value: int | float | bool) -> None:
        self.constexprs[name] = value

    def parameters(self) -> str:
        """The @triton.jit function's parameter list."""
        names = [a.name for a in self.args]
        names += [f"{n}: tl.constexpr" for n in self.constexprs]
        return ", ".join(names)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _static_int(expr: sympy.Expr | int, what: str) -> int:
    expr = sympy.sympify(expr)
    if not expr.is_Integer:
        raise TritonCodegenError(f"scaled_dot_product_attention: {what} {expr} must be static")
    return int(expr)


def block_config(head_dim: int, dtype: torch.dtype, q_len: int | None) -> tuple[int, ...]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) for a padded head dim. 16-bit
    inputs use tensor-core tiles (128 x 64, as flash attention on Hopper);
    float32 runs its ieee products on FMA units with half the registers to
    spare, so smaller tiles. A short query (decode) shrinks BLOCK_M to the
    next power of two >= 16 (tl.dot's minimum)."""
    if dtype in _SIXTEEN_BIT:
        if head_dim <= 64:
            bm, bn, warps, stages = 128, 64, 4, 3
        elif head_dim <= 128:
            bm, bn, warps, stages = 128, 64, 8, 3
        else:
            bm, bn, warps, stages = 64, 32, 4, 2
    else:
        if head_dim <= 64:
            bm, bn, warps, stages = 64, 32, 4, 2
        elif head_dim <= 128:
            bm, bn, warps, stages = 32, 32, 4, 2
        else:
            bm, bn, warps, stages = 16, 16, 4, 1
    if q_len is not None:
        bm = min(bm, max(16, _next_pow2(q_len)))
    return bm, bn, warps, stages


def _check_extent(name: str, sizes: list[sympy.Expr], strides: list[sympy.Expr]) -> None:
    """Offsets inside one (batch, head) are int32 when compiled in: refuse a
    static extent that does not fit rather than overflow."""
    extent = sum(
        (sympy.sympify(s) - 1) * abs(sympy.sympify(t)) for s, t in zip(sizes, strides, strict=True)
    )
    if extent.is_Integer and int(extent) >= _INT32_LIMIT:
        raise TritonCodegenError(
            f"scaled_dot_product_attention: {name} spans {extent} elements per head "
            "(the GPU kernel indexes within a head in int32)"
        )


def sdpa_template(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    """The flash-attention forward launch for an "sdpa" ExternCall."""
    if epilogue is not None:
        raise TritonCodegenError("scaled_dot_product_attention takes no fused epilogue")
    node = call.node
    params = node.params
    q, k, v = node.inputs[:3]
    dtype = q.dtype
    if dtype not in (torch.float32, *_SIXTEEN_BIT):
        raise TritonCodegenError(f"scaled_dot_product_attention: no GPU kernel for {dtype}")
    b, h, q_len, e = q.layout.sizes
    kv_heads, kv_len = k.layout.sizes[1:3]
    ev = v.layout.sizes[3]
    head_dim = _static_int(e, "head dim")
    v_dim = _static_int(ev, "value head dim")
    if max(head_dim, v_dim) > _MAX_HEAD_DIM:
        raise TritonCodegenError(
            f"scaled_dot_product_attention: head dims {head_dim}, {v_dim} (the GPU kernel takes "
            f"up to {_MAX_HEAD_DIM})"
        )
    heads, kvh = sympy.sympify(h), sympy.sympify(kv_heads)
    if heads == kvh:
        group: sympy.Expr = sympy.Integer(1)
    elif heads.is_Integer and kvh.is_Integer and int(kvh) > 0 and int(heads) % int(kvh) == 0:
        group = sympy.Integer(int(heads) // int(kvh))
    else:
        raise TritonCodegenError(
            f"scaled_dot_product_attention: {heads} query heads are not a static multiple of "
            f"{kvh} key/value heads"
        )
    has_mask = bool(params.get("has_mask", False))
    causal = bool(params.get("is_causal", False))
    has_lse = len(node.outputs) > 1
    mask = node.inputs[3] if has_mask else None

    scale = params.get("scale")
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    scale = float(torch.tensor(scale, dtype=torch.float32))  # as the CPU kernel's float

    block_d = max(16, _next_pow2(head_dim))
    block_dv = max(16, _next_pow2(v_dim))
    static_l = sympy.sympify(q_len)
    bm, bn, warps, stages = block_config(
        max(block_d, block_dv), dtype, int(static_l) if static_l.is_Integer else None
    )

    for what, t in (("query", q), ("key", k), ("value", v), ("mask", mask)):
        if t is not None:
            _check_extent(what, list(t.layout.sizes[2:]), list(t.layout.strides[2:]))
    out = node.outputs[0]
    _check_extent("output", [q_len, ev], [ev, 1])

    sig = KernelSignature()
    sig.pointer("Q", q)
    sig.pointer("K", k)
    sig.pointer("V", v)
    if mask is not None:
        sig.pointer("Mask", mask)
    sig.pointer("Out", out)
    if has_lse:
        sig.pointer("Lse", node.outputs[1])
    sig.size("H", h)
    sig.size("GROUP", group)
    sig.size("L", q_len)
    sig.size("S", kv_len)
    for prefix, t in (("sq", q), ("sk", k), ("sv", v), ("sm", mask)):
        if t is not None:
            for axis, stride in zip("bhmd", t.layout.strides, strict=True):
                sig.size(f"{prefix}{axis}", stride)
    static_s = sympy.sympify(kv_len)
    sig.constant("E", head_dim)
    sig.constant("EV", v_dim)
    sig.constant("SCALE_LOG2E", scale * math.log2(math.e))
    sig.constant("CAUSAL", causal)
    sig.constant("HAS_MASK", mask is not None)
    sig.constant("MASK_BOOL", mask is not None and mask.dtype == torch.bool)
    sig.constant("HAS_LSE", has_lse)
    # A static S that is a multiple of BLOCK_N has no ragged last block.
    sig.constant("EVEN_S", bool(static_s.is_Integer and int(static_s) % bn == 0))
    sig.constant("EVEN_M", bool(static_l.is_Integer and int(static_l) % bm == 0))
    sig.constant("BLOCK_M", bm)
    sig.constant("BLOCK_N", bn)
    sig.constant("BLOCK_D", block_d)
    sig.constant("BLOCK_DV", block_dv)

    name = call.name
    if mask is not None:
        mask_ptrs = "Mask + b * smb + h * smh + offs_m[:, None] * smm + offs_n[None, :] * smd"
        mask_key_stride = "smd"
    else:
        mask_ptrs, mask_key_stride = "Q  # no mask: never read", "0"
    lse_store = "tl.store(Lse + bh * L + offs_m, lse, mask=m_ok)" if has_lse else "pass"
    source = _SOURCE.format(
        name=name,
        params=sig.parameters(),
        # bf16/fp16 products run on tensor cores; float32 ones in ieee (no TF32).
        precision=', input_precision="ieee"' if dtype == torch.float32 else "",
        mask_ptrs=mask_ptrs,
        mask_key_stride=mask_key_stride,
        lse_store=lse_store,
    )
    num_m = FloorDiv(sympy.sympify(q_len) + bm - 1, bm)
    grid = (sympy.sympify(num_m * b * h), sympy.Integer(1), sympy.Integer(1))
    writes = {out.name} | ({node.outputs[1].name} if has_lse else set())
    return [
        TritonKernel(
            name=name,
            source=source,
            args=sig.args,
            grid=grid,
            constexprs=sig.constexprs,
            num_warps=warps,
            num_stages=stages,
            writes=writes,
        )
    ]


# The kernel. Strides are s<operand><axis>, axes b, h, m (query or key rows)
# and d (the last axis: head dim, or keys for the mask).
_SOURCE = """
import triton
import triton.language as tl


@triton.jit
def _{name}_load(ptrs, row_ok, col_ok, ROWS: tl.constexpr, COLS: tl.constexpr):
    # A 2-D tile, masked only along the axes that can run out of bounds.
    if ROWS and COLS:
        x = tl.load(ptrs, mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    elif ROWS:
        x = tl.load(ptrs, mask=row_ok[:, None], other=0.0)
    elif COLS:
        x = tl.load(ptrs, mask=col_ok[None, :], other=0.0)
    else:
        x = tl.load(ptrs)
    return x


@triton.jit
def _{name}_keys(acc, l_i, m_i, q, k_ptrs, v_ptrs, mask_ptrs, offs_m, m_ok, lo, hi, S, skm, svm,
                 smd, SCALE_LOG2E: tl.constexpr, E: tl.constexpr, EV: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
                 CAUSAL: tl.constexpr, KEY_MASK: tl.constexpr, HAS_MASK: tl.constexpr,
                 MASK_BOOL: tl.constexpr, EVEN_M: tl.constexpr):
    # Key blocks [lo, hi) of the online softmax ([Note: GPU attention]).
    offs_n0 = tl.arange(0, BLOCK_N)
    d_ok = tl.arange(0, BLOCK_D) < E
    dv_ok = tl.arange(0, BLOCK_DV) < EV
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + offs_n0
        n_ok = offs_n < S
        k = _{name}_load(k_ptrs + start_n * skm, n_ok, d_ok, KEY_MASK, BLOCK_D != E)
        qk = tl.dot(q, tl.trans(k){precision})
        qk = qk * SCALE_LOG2E
        if HAS_MASK:
            mk = _{name}_load(mask_ptrs + start_n * smd, m_ok, n_ok, not EVEN_M, KEY_MASK)
            if MASK_BOOL:
                qk = tl.where(mk, qk, float("-inf"))
            else:
                qk = qk + mk.to(tl.float32) * 1.4426950408889634
        if KEY_MASK:
            qk = tl.where(n_ok[None, :], qk, float("-inf"))
        if CAUSAL:
            qk = tl.where(offs_n[None, :] <= offs_m[:, None], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        # A row with no finite score yet shifts by 0: its p are exp2(-inf) = 0.
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(qk - shift[:, None])
        alpha = tl.math.exp2(m_i - shift)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = _{name}_load(v_ptrs + start_n * svm, n_ok, dv_ok, KEY_MASK, BLOCK_DV != EV)
        acc = tl.dot(p.to(v.dtype), v, acc{precision})
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def {name}({params}):
    pid = tl.program_id(0)
    num_m = tl.cdiv(L, BLOCK_M)
    if CAUSAL:
        start_m = num_m - 1 - pid % num_m  # the longest rows first
    else:
        start_m = pid % num_m
    bh = (pid // num_m).to(tl.int64)
    b = bh // H
    h = bh % H
    hk = h // GROUP
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    offs_n = tl.arange(0, BLOCK_N)
    m_ok = offs_m < L

    q_ptrs = Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd
    q = _{name}_load(q_ptrs, m_ok, offs_d < E, not EVEN_M, BLOCK_D != E)
    k_ptrs = K + b * skb + hk * skh + offs_n[:, None] * skm + offs_d[None, :] * skd
    v_ptrs = V + b * svb + hk * svh + offs_n[:, None] * svm + offs_dv[None, :] * svd
    mask_ptrs = {mask_ptrs}

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)

    # Keys [0, full) need no per-element mask: below every row's diagonal
    # (causal) and before S's ragged last block. Then [full, end) with masks.
    if CAUSAL:
        end = tl.minimum(S, (start_m + 1) * BLOCK_M)
        full = tl.minimum(start_m * BLOCK_M, S) // BLOCK_N * BLOCK_N
    else:
        end = S
        full = S // BLOCK_N * BLOCK_N
    acc, l_i, m_i = _{name}_keys(
        acc, l_i, m_i, q, k_ptrs, v_ptrs, mask_ptrs, offs_m, m_ok, 0, full, S, skm, svm,
        {mask_key_stride}, SCALE_LOG2E, E, EV, BLOCK_N, BLOCK_D, BLOCK_DV, False, False, HAS_MASK,
        MASK_BOOL, EVEN_M)
    if CAUSAL or not EVEN_S:
        acc, l_i, m_i = _{name}_keys(
            acc, l_i, m_i, q, k_ptrs, v_ptrs, mask_ptrs, offs_m, m_ok, full, end, S, skm, svm,
            {mask_key_stride}, SCALE_LOG2E, E, EV, BLOCK_N, BLOCK_D, BLOCK_DV, CAUSAL, True,
            HAS_MASK, MASK_BOOL, EVEN_M)

    # A fully masked row (l = 0) outputs 0, as the CPU kernel.
    dead = l_i == 0.0
    o = acc / tl.where(dead, 1.0, l_i)[:, None]
    o = tl.where(dead[:, None], 0.0, o)
    o_ptrs = Out + bh * L * EV + offs_m[:, None] * EV + offs_dv[None, :]
    if EVEN_M and BLOCK_DV == EV:
        tl.store(o_ptrs, o.to(q.dtype))
    else:
        tl.store(o_ptrs, o.to(q.dtype), mask=m_ok[:, None] & (offs_dv < EV)[None, :])
    if HAS_LSE:
        lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453  # natural units
        {lse_store}
"""


TEMPLATES = {"sdpa": sdpa_template}
