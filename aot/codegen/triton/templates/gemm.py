"""Triton GEMM template: mm, addmm and bmm as one tiled tl.dot kernel with a
fused epilogue ([Note: Triton GEMM]).

[Note: Triton GEMM] One program computes a BLOCK_M x BLOCK_N tile of one
batch's product with fp32 accumulation, walking K in BLOCK_K steps.
Programs are numbered tile by tile with a GROUP_M swizzle: GROUP_M row
blocks share each column block in turn, so the B panels a wave of programs
reads stay in L2. Operands are read in place through their strides (a
transposed weight, a broadcast batch with stride 0); rows and columns past
M and N are clamped (``rm % M``) instead of masked, so the K loop only masks
a ragged last K block. bfloat16/float16 use the tensor cores; float32 uses
input_precision="ieee", as torch's default allow_tf32=False. The tile
(gemm_config) is chosen from the sizes alone, no timings: large GEMMs take
the 128x256x64 tile Triton's Hopper matmuls reach cuBLAS with, tiles shrink
until the grid fills the GPU, and a few rows (decoder steps) get BLOCK_M 16
with narrow columns so enough programs stream B.

Sizes and strides that are plain integers are compiled in as literals
(Triton folds them and knows which loads are contiguous); symbolic ones
become "size" args. Index math is int32 unless an operand could reach 2**31
elements or a size is symbolic (then int64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
import torch

from ....ir.nodes import Buffer, ReinterpretView
from ....scheduler.schedule import ExternCall
from ..context import TritonContext, TritonEpilogue
from ..launch import TritonArg, TritonCodegenError, TritonKernel

Strided = Buffer | ReinterpretView

# Element types of tl.dot operands the templates take.
TL_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "tl.float32",
    torch.bfloat16: "tl.bfloat16",
    torch.float16: "tl.float16",
}
# Programs that fill an H100/H200 (132 SMs) once.
SM_COUNT = 132
# A symbolic size is taken as this large when choosing tiles.
SYMBOLIC_SIZE_GUESS = 1024
INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n: int
    block_k: int
    group_m: int
    num_warps: int
    num_stages: int


def _size_guess(size: sympy.Expr | int) -> int:
    size = sympy.sympify(size)
    return int(size) if size.is_Integer else SYMBOLIC_SIZE_GUESS


def gemm_config(
    m: sympy.Expr | int,
    n: sympy.Expr | int,
    k: sympy.Expr | int,
    dtype: torch.dtype,
    batch=1,
    epilogue: bool = False,
) -> GemmConfig:
    """The tile for a [batch x] M x N x K GEMM of |dtype| ([Note: Triton GEMM]).
    With an |epilogue|, big 16-bit GEMMs take 128 x 128 tiles in 3 stages
    (96 KB of shared memory, two CTAs per SM) instead of 128 x 256 (one CTA):
    the epilogue's arithmetic after the K loop (a GELU's erf and exp) then
    overlaps the other CTA's K loop; alone on the SM it cost gpt's fc GEMM
    70% over the same GEMM without one on the H200."""
    m, n, k, batch = (_size_guess(s) for s in (m, n, k, batch))
    wide = dtype in (torch.bfloat16, torch.float16)  # tensor cores
    if m <= 16:
        # Decoder steps: one 16-row block, as many column blocks as keep the
        # SMs streaming B (the GEMM is bound by reading B).
        block_k = 128 if wide else 64
        block_n = 32
        for candidate in (128, 64):
            if batch * math.ceil(n / candidate) >= 2 * SM_COUNT:
                block_n = candidate
                break
        return GemmConfig(16, block_n, block_k, 1, 4, 4)
    if m <= 64:
        block_n = 128 if batch * math.ceil(n / 128) >= SM_COUNT else 64
        return GemmConfig(64 if m > 32 else 32, block_n, 64 if wide else 32, 8, 4, 4)

    def tiles(bm: int, bn: int) -> int:
        return batch * math.ceil(m / bm) * math.ceil(n / bn)

    if wide:
        if n >= 256 and tiles(128, 256) >= SM_COUNT and k >= 64:
            if epilogue:
                return GemmConfig(128, 128, 64, 8, 8, 3)
            return GemmConfig(128, 256, 64, 8, 8, 3)
        if tiles(128, 128) >= SM_COUNT:
            return GemmConfig(128, 128, 64, 8, 4, 4)
        if tiles(64, 128) >= SM_COUNT:
            return GemmConfig(64, 128, 64, 8, 4, 4)
        return GemmConfig(64, 64, 64, 8, 4, 3)
    # float32 "ieee" dots run on the FMA units: smaller K steps, fewer stages.
    if tiles(128, 128) >= SM_COUNT:
        return GemmConfig(128, 128, 32, 8, 8, 3)
    if tiles(64, 128) >= SM_COUNT:
        return GemmConfig(64, 128, 32, 8, 4, 3)
    return GemmConfig(64, 64, 32, 8, 4, 3)


# -- shared by the GEMM and convolution templates ----------------------------------


class KernelParams:
    """A template's runtime args: pointers to its operands and symbolic sizes.
    size() renders a size as a literal when it is an integer, else as a
    "size" arg (one per distinct expression)."""

    def __init__(self) -> None:
        self.args: list[TritonArg] = []
        self._sizes: dict[sympy.Expr, str] = {}
        self.symbolic = False

    def pointer(self, name: str, value: Strided) -> str:
        buffer = value.data if isinstance(value, ReinterpretView) else value
        self.args.append(
            TritonArg(
                name, "pointer", buffer=buffer.name, dtype=buffer.dtype, offset=_offset(value)
            )
        )
        return name

    def size(self, expr: sympy.Expr | int, name: str) -> str:
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return str(int(expr))
        self.symbolic = True
        if expr not in self._sizes:
            self._sizes[expr] = name
            self.args.append(TritonArg(name, "size", value=expr))
        return self._sizes[expr]


def _offset(value: Strided) -> sympy.Expr:
    return sympy.sympify(value.layout.offset) if isinstance(value, ReinterpretView) else 0


def max_extent(value: Strided) -> int | None:
    """The largest element offset |value| reaches (from its buffer's start),
    or None when it is symbolic."""
    layout = value.layout
    total = sympy.sympify(layout.offset)
    for size, stride in zip(layout.sizes, layout.strides, strict=True):
        total += (sympy.sympify(size) - 1) * sympy.Abs(sympy.sympify(stride))
    return int(total) if total.is_Integer else None


def needs_int64(*values: Strided) -> bool:
    extents = [max_extent(v) for v in values]
    return any(e is None or e + 1 >= INT32_LIMIT for e in extents)


def tl_dtype(dtype: torch.dtype, what: str) -> str:
    if dtype not in TL_DTYPES:
        raise TritonCodegenError(
            f"{what} of {dtype} has no GPU kernel (float32, bfloat16, float16)"
        )
    return TL_DTYPES[dtype]


def dot_call(dtype: torch.dtype) -> str:
    """acc += a @ b in fp32: tensor cores for 16-bit types, exact fp32
    (torch's allow_tf32=False) for float32."""
    precision = ', input_precision="ieee"' if dtype == torch.float32 else ""
    return f"acc = tl.dot(a, b, acc{precision})"


def swizzle_lines(tiles_m: str, tiles_n: str, pid: str = "tile") -> list[str]:
    """pid_m, pid_n of program |pid| in GROUP_M-swizzled order."""
    return [
        f"num_m = {tiles_m}",
        f"num_n = {tiles_n}",
        "group_size = GROUP_M * num_n",
        f"group_first_m = ({pid} // group_size) * GROUP_M",
        "group_rows = tl.minimum(num_m - group_first_m, GROUP_M)",
        f"pid_m = group_first_m + ({pid} % group_size) % group_rows",
        f"pid_n = ({pid} % group_size) // group_rows",
    ]


def epilogue_lines(
    epilogue: TritonEpilogue | None, index: str, value: str, mask: str, store: list[str]
) -> list[str]:
    """The product's |store| lines (unless the epilogue takes its memory)
    followed by the epilogue's body."""
    if epilogue is None:
        return store
    lines = [] if epilogue.shares_product else list(store)
    return lines + list(epilogue.body(index, value, mask))


def render_kernel(
    name: str,
    params: KernelParams,
    epilogue: TritonEpilogue | None,
    constexprs: dict[str, int],
    body: list[str],
) -> str:
    """The module text: imports, the epilogue's helpers, then the kernel."""
    args = [a.name for a in params.args]
    if epilogue is not None:
        args += [a.name for a in epilogue.args]
    args += [f"{c}: tl.constexpr" for c in constexprs]
    lines = [
        "import triton",
        "import triton.language as tl",
        "",
        "",
    ]
    if epilogue is not None and epilogue.helpers.strip():
        lines += [epilogue.helpers.rstrip(), "", ""]
    lines += ["@triton.jit", f"def {name}({', '.join(args)}):"]
    lines += [f"    {line}" if line else "" for line in body]
    return "\n".join(lines) + "\n"


def finish_kernel(
    name: str,
    params: KernelParams,
    epilogue: TritonEpilogue | None,
    config: GemmConfig,
    constexprs: dict[str, int],
    body: list[str],
    grid: tuple[sympy.Expr, sympy.Expr, sympy.Expr],
    output: Buffer,
) -> TritonKernel:
    source = render_kernel(name, params, epilogue, constexprs, body)
    args = list(params.args) + (list(epilogue.args) if epilogue else [])
    writes = {output.name}
    checks: list[str] = []
    if epilogue is not None:
        checks = list(epilogue.index_checks)
        writes |= {a.buffer for a in epilogue.args if a.kind == "pointer" and a.buffer}
    return TritonKernel(
        name=name,
        source=source,
        args=args,
        grid=grid,
        constexprs=dict(constexprs),
        num_warps=config.num_warps,
        num_stages=config.num_stages,
        writes=writes,
        index_checks=checks,
    )


def float_literal(value: float, what: str) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise TritonCodegenError(f"{what} {value} is not finite (no GPU kernel for it)")
    return repr(value)


def cdiv_text(text: str, block: int, block_name: str) -> str:
    """ceil(|text| / block) as source: a literal when |text| is one."""
    if text.lstrip("-").isdigit():
        return str(-(-int(text) // block))
    return f"({text} + {block_name} - 1) // {block_name}"


def cdiv(n: sympy.Expr, block: int) -> sympy.Expr:
    from ....ir.symbols import FloorDiv

    return FloorDiv(sympy.sympify(n) + block - 1, block)


# -- the GEMM kernel ------------------------------------------------------------------


def _matrix(value: Strided) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    """(batch stride, row stride, column stride); batch stride 0 for 2-D."""
    strides = [sympy.sympify(s) for s in value.layout.strides]
    if len(strides) == 2:
        return sympy.Integer(0), strides[0], strides[1]
    return strides[0], strides[1], strides[2]


def generate_gemm(
    call: ExternCall, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node
    a, b = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    out = node.outputs[0]
    dtype = out.dtype
    tl_dtype(dtype, node.kind)
    for value in node.inputs:
        if value.dtype != dtype:
            raise TritonCodegenError(f"{node.kind}: operands of {value.dtype} and {dtype}")
    batch = sympy.sympify(a.layout.sizes[0]) if len(a.layout.sizes) == 3 else sympy.Integer(1)
    m, k = (sympy.sympify(s) for s in a.layout.sizes[-2:])
    n = sympy.sympify(b.layout.sizes[-1])
    alpha = float(node.params.get("alpha", 1.0))
    beta = float(node.params.get("beta", 0.0))
    use_bias = bias is not None and beta != 0.0
    # [Note: folded batch] A bmm whose B is one matrix broadcast over the
    # batch (stride 0: a linear layer applied to a 3-D view that does not
    # flatten, as multi-head attention's in-projection of a transposed input)
    # is one GEMM over batch*M rows: row r is (r // M, r % M) of A and row r
    # of the contiguous output. A batch of tiny M-row GEMMs would re-read B
    # once per batch and leave most of each tile empty.
    folded = batch != 1 and _matrix(b)[0] == 0
    rows = batch * m if folded else m
    config = gemm_config(rows, n, k, dtype, 1 if folded else batch, epilogue is not None)

    p = KernelParams()
    p.pointer("a_ptr", a)
    p.pointer("b_ptr", b)
    if use_bias:
        p.pointer("bias_ptr", bias)
    p.pointer("out_ptr", out)
    M, N, K = p.size(m, "M"), p.size(n, "N"), p.size(k, "K")
    R = p.size(rows, "R") if folded else M
    sab, sam, sak = (p.size(s, f"stride_a{d}") for s, d in zip(_matrix(a), "bmk", strict=True))
    sbb, sbk, sbn = (p.size(s, f"stride_b{d}") for s, d in zip(_matrix(b), "bkn", strict=True))
    wide = needs_int64(a, b, out, *([bias] if use_bias else [])) or p.symbolic

    BM, BN, BK = config.block_m, config.block_n, config.block_k
    tiles_m, tiles_n = cdiv_text(R, BM, "BLOCK_M"), cdiv_text(N, BN, "BLOCK_N")
    body = [
        "pid = tl.program_id(0)",
        f"tiles = ({tiles_m}) * ({tiles_n})",
        "batch = pid // tiles",
        "tile = pid % tiles",
        *swizzle_lines(tiles_m, tiles_n),
        "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
        "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
        "rk = tl.arange(0, BLOCK_K)",
    ]
    if wide:
        body += ["batch = batch.to(tl.int64)", "rm = rm.to(tl.int64)", "rn = rn.to(tl.int64)"]
    # Clamped rows and columns: loads need no M/N masks ([Note: Triton GEMM]).
    body.append("ram = rm" if rows.is_Integer and int(rows) % BM == 0 else f"ram = rm % {R}")
    body.append("rbn = rn" if n.is_Integer and int(n) % BN == 0 else f"rbn = rn % {N}")
    a_rows = f"(ram // {M})[:, None] * {sab} + (ram % {M})[:, None] * {sam}"
    if not folded:
        a_rows = f"batch * {sab} + ram[:, None] * {sam}"
    body += [
        f"a_ptrs = a_ptr + {a_rows} + rk[None, :] * {sak}",
        f"b_ptrs = b_ptr + batch * {sbb} + rk[:, None] * {sbk} + rbn[None, :] * {sbn}",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
    ]
    even_k = k.is_Integer and int(k) % BK == 0
    body.append(f"for kk in range(0, {cdiv_text(K, BK, 'BLOCK_K')}):")
    if even_k:
        body += ["    a = tl.load(a_ptrs)", "    b = tl.load(b_ptrs)"]
    else:
        body += [
            f"    k_left = {K} - kk * BLOCK_K",
            "    a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0.0)",
            "    b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0.0)",
        ]
    body += [
        f"    {dot_call(dtype)}",
        f"    a_ptrs += BLOCK_K * {sak}",
        f"    b_ptrs += BLOCK_K * {sbk}",
    ]
    if alpha != 1.0:
        body.append(f"acc = acc * {float_literal(alpha, 'alpha')}")
    if use_bias:
        # Broadcast dims of the bias view have stride 0.
        bias_strides = bias.layout.strides[-2:]
        sbm, sbn_ = (p.size(s, f"stride_bias{d}") for d, s in zip("mn", bias_strides, strict=True))
        body.append(f"bias = tl.load(bias_ptr + ram[:, None] * {sbm} + rbn[None, :] * {sbn_})")
        scale = "" if beta == 1.0 else f" * {float_literal(beta, 'beta')}"
        body.append(f"acc = acc + bias.to(tl.float32){scale}")
    body += [
        # (folded: batch is 0 and rm runs over all batch*M rows)
        f"idx = batch * ({M} * {N}) + rm[:, None] * {N} + rn[None, :]",
        f"mask = (rm[:, None] < {R}) & (rn[None, :] < {N})",
    ]
    store = ["tl.store(out_ptr + idx, acc.to(out_ptr.dtype.element_ty), mask=mask)"]
    body += epilogue_lines(epilogue, "idx", "acc", "mask", store)

    constexprs = {"BLOCK_M": BM, "BLOCK_N": BN, "BLOCK_K": BK, "GROUP_M": config.group_m}
    programs = cdiv(rows, BM) * cdiv(n, BN) * (1 if folded else sympy.sympify(batch))
    grid = (programs, sympy.Integer(1), sympy.Integer(1))
    return [finish_kernel(call.name, p, epilogue, config, constexprs, body, grid, out)]


TEMPLATES = {"mm": generate_gemm, "addmm": generate_gemm, "bmm": generate_gemm}
