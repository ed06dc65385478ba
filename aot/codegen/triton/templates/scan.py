"""Triton templates for the scan extern kernels: cumsum, cumprod,
logcumsumexp, cummax and cummin (operands: [Note: scan kernel operands] in
aot/codegen/cpp/extern_scan.py).

Also home of the strided-operand helpers the sort and scatter templates share
(SizeArgs, strided_offset, pointer_arg): a size is compiled in when it is an
integer and passed as a "size" arg when it is an expression over size symbols.

[Note: Triton scans] A scan reads |lines|: every position of the input
outside the scan dim, each a row of n elements |stride| apart. The output is
contiguous [outer, n, inner], so line l = (o, i) starts at o * n * inner + i
and its elements are |inner| apart. One program owns BLOCK_L neighbouring
lines (neighbours are adjacent in memory for a scan over a leading dim, so
loads stay coalesced either way) and walks their rows in chunks of BLOCK_N
with tl.associative_scan along axis 1, carrying each line's prefix from one
chunk to the next (a row that fits one chunk needs no carry).

Numerics, compared with the CPU kernels ([Note: scan kernel numerics] in
aotc_cpu_scan.h):
- Elements are converted to the output dtype first, then to the accumulator:
  float32 for float32 and bfloat16 (as torch's CUDA scans; the CPU
  accumulates float32 in double), float64 for float64, int64 for integers
  (wrapping). A tree scan adds in another order than the CPU's loop: float
  sums agree within rounding, not bit for bit.
- logcumsumexp combines with log1p(exp(lo - hi)) + hi, NaN propagating and
  the same infinity kept, as the CPU's log_add_exp.
- cummax/cummin combine (value, index) pairs so that the later one wins ties
  and a NaN takes over and stays (the latest NaN's index): the same values
  and indices as the CPU, bit for bit, whatever the combine order.
A line longer than one chunk is scanned by one program, chunk after chunk: a
few very long lines (a 1-d cumsum of millions of elements) use one SM each.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch

from ....ir.nodes import Buffer, ReinterpretView
from ....ir.symbols import FloorDiv
from ...triton.context import TritonContext, TritonEpilogue
from ...triton.launch import TritonArg, TritonCodegenError, TritonKernel

Strided = Buffer | ReinterpretView

# Triton's spelling of each element type.
TL_TYPES: dict[torch.dtype, str] = {
    torch.float32: "tl.float32",
    torch.float64: "tl.float64",
    torch.float16: "tl.float16",
    torch.bfloat16: "tl.bfloat16",
    torch.int8: "tl.int8",
    torch.uint8: "tl.uint8",
    torch.int16: "tl.int16",
    torch.int32: "tl.int32",
    torch.int64: "tl.int64",
    torch.bool: "tl.int1",
}

# Offsets past this need int64 index math.
INT32_LIMIT = 2**31 - 1


def tl_type(dtype: torch.dtype) -> str:
    if dtype not in TL_TYPES:
        raise TritonCodegenError(f"no Triton element type for {dtype}")
    return TL_TYPES[dtype]


def static(expr: sympy.Expr | int) -> int | None:
    """|expr| as an int when it is one."""
    expr = sympy.sympify(expr)
    return int(expr) if expr.is_number else None


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def ceil_div(n: sympy.Expr, block: int) -> sympy.Expr:
    n = sympy.sympify(n)
    if n.is_number:
        return sympy.Integer(-(-int(n) // block))
    return FloorDiv(n + block - 1, block)


class SizeArgs:
    """The size expressions of one kernel as source text: integers inline,
    anything over size symbols as a "size" arg (one per distinct expression)."""

    def __init__(self) -> None:
        self.args: list[TritonArg] = []
        self._names: dict[sympy.Expr, str] = {}

    def __call__(self, expr: sympy.Expr | int) -> str:
        expr = sympy.sympify(expr)
        if expr.is_number:
            return str(int(expr))
        name = self._names.get(expr)
        if name is None:
            name = f"size{len(self._names)}"
            self._names[expr] = name
            self.args.append(TritonArg(name, "size", value=expr))
        return name


def pointer_arg(name: str, value: Strided, dtype: torch.dtype | None = None) -> TritonArg:
    """A pointer arg to |value|'s first element."""
    if isinstance(value, ReinterpretView):
        return TritonArg(
            name, "pointer", value.data.name, dtype or value.dtype, value.layout.offset
        )
    return TritonArg(name, "pointer", value.name, dtype or value.dtype, value.layout.offset)


def merge_dims(
    sizes: Sequence[sympy.Expr], strides: Sequence[sympy.Expr]
) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """(size, stride) pairs of a row-major walk over |sizes|, size-1 dims
    dropped and neighbours that step like one dim merged (fewer divisions)."""
    out: list[tuple[sympy.Expr, sympy.Expr]] = []
    for size, stride in zip(sizes, strides, strict=True):
        size, stride = sympy.sympify(size), sympy.sympify(stride)
        if size == 1:
            continue
        if out and sympy.simplify(out[-1][1] - stride * size) == 0:
            out[-1] = (out[-1][0] * size, stride)
            continue
        out.append((size, stride))
    return out


def strided_offset(
    flat: str,
    sizes: Sequence[sympy.Expr],
    strides_sets: Sequence[Sequence[sympy.Expr]],
    sz: SizeArgs,
    prefix: str,
) -> tuple[list[str], list[str]]:
    """Statements computing, for the row-major flat position tensor |flat|
    over |sizes|, its offset under each stride set. Returns (statements,
    offset expressions). Names it defines start with |prefix|."""
    lines: list[str] = []
    offsets = [[] for _ in strides_sets]
    dims = [
        (sizes[d], [s[d] for s in strides_sets])
        for d in range(len(sizes))
        if sympy.sympify(sizes[d]) != 1
    ]
    if len(strides_sets) == 1:  # merging only pays for one stride set
        dims = [(size, [stride]) for size, stride in merge_dims(sizes, strides_sets[0])]
    rem = flat
    for k in range(len(dims) - 1, -1, -1):
        size, strides = dims[k]
        coord = f"{prefix}c{k}"
        if k == 0:
            lines.append(f"{coord} = {rem}")
        else:
            lines.append(f"{coord} = {rem} % {sz(size)}")
            lines.append(f"{prefix}r{k} = {rem} // {sz(size)}")
            rem = f"{prefix}r{k}"
        for n, stride in enumerate(strides):
            stride = sympy.sympify(stride)
            if stride == 0:
                continue
            offsets[n].append(coord if stride == 1 else f"{coord} * {sz(stride)}")
    exprs = [" + ".join(terms) if terms else f"{flat} * 0" for terms in offsets]
    return lines, exprs


def needs_int64(*values: Strided | Sequence[sympy.Expr]) -> bool:
    """Whether offsets into these views (or sizes) may pass int32."""
    for value in values:
        if isinstance(value, (Buffer, ReinterpretView)):
            layout = value.layout
            span = sympy.sympify(layout.offset) + sum(
                (sympy.sympify(s) - 1) * abs(sympy.sympify(t))
                for s, t in zip(layout.sizes, layout.strides, strict=True)
            )
            numel = layout.numel()
        else:
            span = numel = sympy.Mul(*[sympy.sympify(s) for s in value])
        for expr in (span, numel):
            n = static(expr)
            if n is None or n > INT32_LIMIT // 2:
                return True
    return False


def view_shape(value: Strided) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    return list(value.layout.sizes), list(value.layout.strides)


def kernel_source(helpers: str, name: str, params: Sequence[str], body: Sequence[str]) -> str:
    """A module defining @triton.jit |name|(|params|) after |helpers|."""
    imports = ["import triton", "import triton.language as tl"]
    if "libdevice." in helpers or any("libdevice." in line for line in body):
        imports.append("from triton.language.extra import libdevice")
    kernel = [
        "@triton.jit",
        f"def {name}({', '.join(params)}):",
        *(f"    {line}" for line in body),
    ]
    parts = ["\n".join(imports), helpers.strip(), "\n".join(kernel)]
    return "\n\n\n".join(p for p in parts if p) + "\n"


def warps_for(elements: int) -> int:
    """num_warps for a tile of |elements| (about 8 elements a thread)."""
    return max(1, min(8, next_pow2(elements) // 256))


# --------------------------------------------------------------------------- #
# Scans                                                                        #
# --------------------------------------------------------------------------- #

# Accumulator of cumsum/cumprod/logcumsumexp by output dtype.
_ACC = {
    torch.float32: "tl.float32",
    torch.bfloat16: "tl.float32",
    torch.float16: "tl.float32",
    torch.float64: "tl.float64",
}

_COMBINE_HELPERS = """
@triton.jit
def _aotc_add(a, b):
    return a + b


@triton.jit
def _aotc_mul(a, b):
    return a * b


@triton.jit
def _aotc_log_add_exp(a, b):
    # log(exp(a) + exp(b)); NaN propagates, the same infinity stays.
    lo = tl.minimum(a, b)
    hi = tl.maximum(a, b)
    same_inf = (lo == hi) & (tl.abs(lo) == float("inf"))
    e = tl.exp(lo - hi)
    u = 1.0 + e
    # log1p(e) by Kahan's correction (libdevice is not in the interpreter).
    log1p = tl.where(u == 1.0, e, tl.log(u) * (e / (u - 1.0)))
    out = tl.where(same_inf, a, log1p + hi)
    return tl.where((a != a) | (b != b), a + b, out)


@triton.jit
def _aotc_cummax(v1, i1, v2, i2):
    # v2 is later: it wins ties and NaN; a NaN v1 stays unless v2 is NaN.
    take = (v2 != v2) | ((v1 == v1) & (v2 >= v1))
    return tl.where(take, v2, v1), tl.where(take, i2, i1)


@triton.jit
def _aotc_cummin(v1, i1, v2, i2):
    take = (v2 != v2) | ((v1 == v1) & (v2 <= v1))
    return tl.where(take, v2, v1), tl.where(take, i2, i1)


@triton.jit
def _aotc_last1(a, ja, b, jb):
    take = jb > ja
    return tl.where(take, b, a), tl.where(take, jb, ja)


@triton.jit
def _aotc_last2(a, ia, ja, b, ib, jb):
    take = jb > ja
    return tl.where(take, b, a), tl.where(take, ib, ia), tl.where(take, jb, ja)
"""

_ACCUMULATE = {"cumsum": "_aotc_add", "cumprod": "_aotc_mul", "logcumsumexp": "_aotc_log_add_exp"}
_EXTREME = {"cummax": "_aotc_cummax", "cummin": "_aotc_cummin"}

# Single-chunk rows up to this length; longer ones loop over chunks.
MAX_SCAN_CHUNK = 2048
LOOP_CHUNK = 1024


def _identity(kind: str, acc: str, dtype: torch.dtype) -> str:
    """The carry before a line's first chunk, in |acc|."""
    floating = acc in ("tl.float32", "tl.float64")
    if kind == "cumsum":
        return "-0.0" if floating else "0"  # -0.0 + x == x, -0.0 included
    if kind == "cumprod":
        return "1.0" if floating else "1"
    if kind == "logcumsumexp":
        return 'float("-inf")'
    if floating:
        return 'float("-inf")' if kind == "cummax" else 'float("inf")'
    info = torch.iinfo(torch.int8 if dtype == torch.bool else dtype)
    return str(info.min if kind == "cummax" else info.max)


def _scan(call: object, ctx: TritonContext, epilogue: TritonEpilogue | None) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    kind = node.kind
    if epilogue is not None:
        raise TritonCodegenError(f"{kind} takes no epilogue")
    x = node.inputs[0]
    sizes, strides = view_shape(x)
    if not sizes:
        sizes, strides = [sympy.Integer(1)], [sympy.Integer(0)]
    dim = int(node.params["dim"])
    if not 0 <= dim < len(sizes):
        raise TritonCodegenError(f"{kind}: scan dim {dim} out of range for {len(sizes)} dims")
    out_dtype = node.outputs[0].dtype
    extreme = kind in _EXTREME
    sz = SizeArgs()
    n = sympy.sympify(sizes[dim])
    other_sizes = sizes[:dim] + sizes[dim + 1 :]
    other_strides = strides[:dim] + strides[dim + 1 :]
    inner = sympy.Mul(*sizes[dim + 1 :]) if dim + 1 < len(sizes) else sympy.Integer(1)
    lines_count = sympy.Mul(*other_sizes) if other_sizes else sympy.Integer(1)
    wide = needs_int64(x, [*sizes, 2])

    n_static = static(n)
    single = n_static is not None and n_static <= MAX_SCAN_CHUNK
    block_n = next_pow2(n_static) if single else LOOP_CHUNK
    block_l = max(1, MAX_SCAN_CHUNK // block_n)
    if static(lines_count) is not None:
        block_l = max(1, min(block_l, next_pow2(static(lines_count))))

    if extreme:
        value = "tl.float32" if x.dtype == torch.bfloat16 else tl_type(x.dtype)
        if x.dtype == torch.bool:
            value = "tl.int8"
        acc = value
    else:
        acc = _ACC.get(out_dtype, "tl.int64")
    body = [
        "lines = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)",
        *(["lines = lines.to(tl.int64)"] if wide else []),
        f"line_mask = lines < {sz(lines_count)}",
    ]
    decompose, (in_base,) = strided_offset("lines", other_sizes, [other_strides], sz, "l_")
    body += decompose
    body.append(f"in_base = {in_base}")
    if inner == 1:
        body.append(f"out_base = lines * {sz(n)}")
    else:
        body.append(f"out_base = (lines // {sz(inner)}) * {sz(n * inner)} + lines % {sz(inner)}")
    body.append("cols = tl.arange(0, BLOCK_N)")
    step = sz(strides[dim])
    out_step = sz(inner)

    def chunk(start: str, indent: str) -> list[str]:
        j = "cols" if start == "0" else f"{start} + cols"
        lines_ = [
            f"j = {j}",
            f"mask = line_mask[:, None] & (j < {sz(n)})[None, :]",
            f"x = tl.load(x_ptr + in_base[:, None] + j[None, :] * {step}, mask=mask, other=0)",
        ]
        if extreme:
            lines_ += [
                f"x = x.to({acc})",
                "jj = (j[None, :] + lines[:, None] * 0).to(tl.int64)",
                f"v, i = tl.associative_scan((x, jj), 1, {_EXTREME[kind]})",
            ]
        else:
            lines_ += [
                f"x = x.to({tl_type(out_dtype)}).to({acc})",
                f"v = tl.associative_scan(x, 1, {_ACCUMULATE[kind]})",
            ]
        return [indent + line for line in lines_]

    def store(indent: str) -> list[str]:
        dst = f"out_base[:, None] + j[None, :] * {out_step}"
        lines_ = [f"tl.store(out_ptr + {dst}, v.to({tl_type(out_dtype)}), mask=mask)"]
        if extreme:
            lines_.append(f"tl.store(idx_ptr + {dst}, i, mask=mask)")
        return [indent + line for line in lines_]

    if single:
        body += chunk("0", "")
        body += store("")
    else:
        ident = _identity(kind, acc, x.dtype)
        body.append(f"carry = tl.full([BLOCK_L], {ident}, {acc})")
        if extreme:
            body.append("carry_i = tl.zeros([BLOCK_L], tl.int64)")
        body.append(f"for start in range(0, {sz(n)}, BLOCK_N):")
        body += chunk("start", "    ")
        if extreme:
            body += [
                f"    v, i = {_EXTREME[kind]}(carry[:, None], carry_i[:, None], v, i)",
            ]
        else:
            body.append(f"    v = {_ACCUMULATE[kind]}(carry[:, None], v)")
        body += store("    ")
        # The carry is each line's last column (the chunk is full when a
        # next one exists); pick it by column number.
        if extreme:
            body.append("    carry, carry_i, _ = tl.reduce((v, i, jj), 1, _aotc_last2)")
        else:
            body += [
                "    jj = j[None, :] + lines[:, None] * 0",
                "    carry, _ = tl.reduce((v, jj), 1, _aotc_last1)",
            ]

    name = call.name  # type: ignore[attr-defined]
    # An empty scan dim launches nothing (a dynamic one loops zero times).
    grid = sympy.Integer(0) if n_static == 0 else ceil_div(lines_count, block_l)
    args = [
        pointer_arg("x_ptr", x),
        TritonArg("out_ptr", "pointer", node.outputs[0].name, out_dtype),
    ]
    if extreme:
        args.append(TritonArg("idx_ptr", "pointer", node.outputs[1].name, torch.int64))
    args += sz.args
    params = [a.name for a in args] + ["BLOCK_L: tl.constexpr", "BLOCK_N: tl.constexpr"]
    return [
        TritonKernel(
            name=name,
            source=kernel_source(_COMBINE_HELPERS, name, params, body),
            args=args,
            grid=(grid, sympy.Integer(1), sympy.Integer(1)),
            constexprs={"BLOCK_L": block_l, "BLOCK_N": block_n},
            num_warps=warps_for(block_l * block_n),
            writes={b.name for b in node.outputs},
        )
    ]


TEMPLATES = {kind: _scan for kind in (*_ACCUMULATE, *_EXTREME)}
