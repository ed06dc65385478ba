"""Triton templates for the scatter extern kernels: scatter (scatter,
scatter_add, scatter_reduce, index_reduce) and index_put (index_put, put,
index_add); operands as aot/codegen/cpp/extern_scatter.py and [Note: scatter
kernels] in aot/lowering/scatter.py.

Each is up to three launches, in order: "<call>_copy" copies self into the
contiguous output (left out when the call writes in place: ExternCall.in_place,
[Note: in-place mutations]); "<call>_init" sets the elements a reduction
without self (include_self=False) hits to the reduction's identity; "<call>"
scatters, one lane per index position.

[Note: GPU scatter order] Unlike the CPU kernels ([Note: scatter
determinism] in aotc_cpu_scatter.h), lanes write concurrently:
- Accumulation goes through atomics: tl.atomic_add (sum, index_put
  accumulate=True; float32, float64, int32, int64), tl.atomic_max/min
  (integer amax/amin), and a compare-and-swap loop on the element's bits for
  the rest (prod; float amax/amin, which must propagate NaN as the CPU does
  and Triton's float atomic_min does not; bfloat16 sums, for which the
  interpreter has no atomic add). Float sums and products therefore add in
  arrival order: results are NOT deterministic run to run and differ from the
  CPU's within rounding. bfloat16 rounds after every step (the CPU's
  scatter_add keeps a float32 accumulator and rounds once).
- A non-accumulating scatter or index_put with duplicate indices keeps one of
  the written values, which one is unspecified (torch says so too).
- An out-of-range index is refused as on the CPU (no write, then the error
  "index V out of range [0, N)" through INDEX_ERRORS, [Note: GPU index
  checks]); index_put wraps negative indices once, scatter does not.
- reduce="mean" raises TritonCodegenError: it needs a per-element count and
  templates get no scratch memory.
The interpreter runs programs one after another, so tests see one order.
"""

from __future__ import annotations

import math

import sympy
import torch

from ...triton.context import INDEX_ERRORS, TritonContext, TritonEpilogue
from ...triton.launch import TritonArg, TritonCodegenError, TritonKernel
from .scan import (
    SizeArgs,
    ceil_div,
    kernel_source,
    needs_int64,
    next_pow2,
    pointer_arg,
    static,
    strided_offset,
    tl_type,
    view_shape,
)

BLOCK = 1024  # index positions (or elements) per program
_ONE = sympy.Integer(1)

# Same-width integer types for compare-and-swap on an element's bits.
_BITS = {
    torch.float32: "tl.int32",
    torch.float64: "tl.int64",
    torch.bfloat16: "tl.int16",
    torch.int32: "tl.int32",
    torch.int64: "tl.int64",
}


def _compute_type(dtype: torch.dtype) -> str:
    return "tl.float32" if dtype == torch.bfloat16 else tl_type(dtype)


def _combine_expr(reduce: str, floating: bool) -> str:
    """combine(a, b) for a reduction, a the stored value (NaN-propagating
    max/min as the CPU's)."""
    if reduce == "sum":
        return "a + b"
    if reduce == "prod":
        return "a * b"
    pick = "b > a" if reduce == "amax" else "b < a"
    if not floating:
        return f"tl.where({pick}, b, a)"
    return f"tl.where(a != a, a, tl.where((b != b) | ({pick}), b, a))"


def _cas_helper(dtype: torch.dtype, reduce: str) -> str:
    """@triton.jit _aotc_cas(ptr, v, active): *ptr = combine(*ptr, v) where
    active, by compare-and-swap on the bits (|ptr| valid in every lane)."""
    t, bits, acc = tl_type(dtype), _BITS[dtype], _compute_type(dtype)
    combine = _combine_expr(reduce, dtype.is_floating_point)
    # max/min leave most elements alone: those lanes need no swap.
    skip = "active = active & (new != old)" if reduce in ("amax", "amin") else ""
    loop = [
        f"current = old.to({t}, bitcast=True).to({acc})",
        f"new = _aotc_combine(current, v).to({t}).to({bits}, bitcast=True)",
        *([skip] if skip else []),
        "# Inactive lanes swap their value for itself: a no-op.",
        "new = tl.where(active, new, old)",
        'seen = tl.atomic_cas(bits_ptr, old, new, sem="relaxed")',
        "active = active & (seen != old)",
        "old = seen",
    ]
    return "\n".join(
        [
            "@triton.jit",
            "def _aotc_combine(a, b):",
            f"    return {combine}",
            "",
            "",
            "@triton.jit",
            "def _aotc_cas(ptr, v, active):",
            f"    bits_ptr = ptr.to(tl.pointer_type({bits}), bitcast=True)",
            "    old = tl.load(bits_ptr, mask=active, other=0)",
            "    while tl.max(active.to(tl.int32)) > 0:",
            *(f"        {line}" for line in loop),
        ]
    )


def _update(dtype: torch.dtype, reduce: str, dst: str, value: str, mask: str) -> tuple[str, str]:
    """(helper source, statement) writing |value| into out at |dst| with
    |reduce| ("none" stores)."""
    if reduce == "none":
        return "", f"tl.store(out_ptr + {dst}, {value}, mask={mask})"
    native_add = reduce == "sum" and dtype != torch.bfloat16
    native_extreme = reduce in ("amax", "amin") and not dtype.is_floating_point
    if native_add or native_extreme:
        fn = {"sum": "atomic_add", "amax": "atomic_max", "amin": "atomic_min"}[reduce]
        return "", f'tl.{fn}(out_ptr + {dst}, {value}, mask={mask}, sem="relaxed")'
    if dtype not in _BITS:
        raise TritonCodegenError(f"scatter {reduce}: no compare-and-swap for {dtype}")
    safe = f"out_ptr + tl.where({mask}, {dst}, 0)"
    return _cas_helper(
        dtype, reduce
    ), f"_aotc_cas({safe}, {value}.to({_compute_type(dtype)}), {mask})"


def _report(bad: str, value: str, size: str, check: int) -> list[str]:
    """Records the first bad index in INDEX_ERRORS ([Note: GPU index checks]):
    the lane that flips slot 0 writes the rest."""
    return [
        f"first = tl.atomic_xchg(err_ptr + zero, 1, mask={bad}, sem='relaxed')",
        f"won = {bad} & (first == 0)",
        f"tl.store(err_ptr + 1 + zero, {value}.to(tl.int64), mask=won)",
        f"tl.store(err_ptr + 2 + zero, zero + {size}, mask=won)",
        f"tl.store(err_ptr + 3 + zero, zero + {check}, mask=won)",
    ]


def _literal(value: object, dtype: torch.dtype) -> str:
    if value is None:
        value = 0
    if not dtype.is_floating_point:
        return str(int(value))  # type: ignore[arg-type]
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or math.isinf(number):
        return f'float("{number}")'
    return repr(number)


def _identity(reduce: str, dtype: torch.dtype) -> str:
    """The start value of a reduction that leaves self out."""
    if reduce == "prod":
        return "1"
    if reduce in ("amax", "amin"):
        if dtype.is_floating_point:
            return 'float("-inf")' if reduce == "amax" else 'float("inf")'
        info = torch.iinfo(dtype)
        return str(info.min if reduce == "amax" else info.max)
    return "0"


def _contiguous_strides(sizes: list[sympy.Expr]) -> list[sympy.Expr]:
    out: list[sympy.Expr] = []
    stride: sympy.Expr = _ONE
    for size in reversed(sizes):
        out.append(stride)
        stride = stride * size
    return out[::-1]


def _copy_kernel(name: str, self_v: object, out: object) -> TritonKernel:
    """out (contiguous) = self (any strides)."""
    sz = SizeArgs()
    sizes, strides = view_shape(self_v)  # type: ignore[arg-type]
    numel = sympy.Mul(*sizes) if sizes else _ONE
    wide = needs_int64(self_v, [numel])  # type: ignore[arg-type]
    decompose, (src,) = strided_offset("e", sizes, [strides], sz, "e_")
    body = [
        "e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        *(["e = e.to(tl.int64)"] if wide else []),
        f"mask = e < {sz(numel)}",
        *decompose,
        f"tl.store(out_ptr + e, tl.load(self_ptr + {src}, mask=mask), mask=mask)",
    ]
    args = [
        pointer_arg("self_ptr", self_v),  # type: ignore[arg-type]
        TritonArg("out_ptr", "pointer", out.name, out.dtype),  # type: ignore[attr-defined]
        *sz.args,
    ]
    params = [a.name for a in args] + ["BLOCK: tl.constexpr"]
    return TritonKernel(
        name=name,
        source=kernel_source("", name, params, body),
        args=args,
        grid=(ceil_div(numel, BLOCK), _ONE, _ONE),
        constexprs={"BLOCK": BLOCK},
        num_warps=4,
        writes={out.name},  # type: ignore[attr-defined]
    )


def _no_epilogue(kind: str, epilogue: TritonEpilogue | None) -> None:
    if epilogue is not None:
        raise TritonCodegenError(f"{kind} takes no epilogue")


# --------------------------------------------------------------------------- #
# scatter                                                                      #
# --------------------------------------------------------------------------- #


def _scatter(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    name = call.name  # type: ignore[attr-defined]
    _no_epilogue("scatter", epilogue)
    params = node.params
    op, reduce, dim = params.get("op", "scatter"), params["reduce"], int(params["dim"])
    if reduce == "mean":
        raise TritonCodegenError(
            f"{op}(reduce='mean') has no GPU kernel yet: it needs a per-element count buffer"
        )
    self_v, index_v = node.inputs[0], node.inputs[1]
    src_v = node.inputs[2] if len(node.inputs) > 2 else None
    out = node.outputs[0]
    dtype = out.dtype
    self_sizes = list(self_v.layout.sizes)
    isizes, istrides = view_shape(index_v)
    out_strides = _contiguous_strides(self_sizes)
    positions = sympy.Mul(*isizes) if isizes else _ONE
    wide = needs_int64(self_v, index_v, [*self_sizes, 2], *([src_v] if src_v is not None else []))

    def walk(sz: SizeArgs) -> list[str]:
        """Index positions `t` of this program: `mask`, `pos` (the index
        read), `bad`, `ok` and `dst` (the output element)."""
        sstrides = list(src_v.layout.strides) if src_v is not None else [0] * len(isizes)
        ostrides = [0 if d == dim else s for d, s in enumerate(out_strides)]
        decompose, (ioff, soff, ooff) = strided_offset(
            "t", isizes, [istrides, sstrides, ostrides], sz, "t_"
        )
        size = sz(self_sizes[dim])
        return [
            "t = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
            *(["t = t.to(tl.int64)"] if wide else []),
            f"mask = t < {sz(positions)}",
            *decompose,
            f"pos = tl.load(index_ptr + {ioff}, mask=mask, other=0)",
            f"bad = mask & ((pos < 0) | (pos >= {size}))",
            "ok = mask & ~bad",
            f"dst = {ooff} + pos * {sz(out_strides[dim])}",
            f"src_off = {soff}",
        ]

    def kernel(
        suffix: str, body: list[str], helpers: str, sz: SizeArgs, checks: bool
    ) -> TritonKernel:
        kname = f"{name}{suffix}"
        args = [pointer_arg("index_ptr", index_v, torch.int64)]
        if src_v is not None:
            args.append(pointer_arg("src_ptr", src_v, dtype))
        args.append(TritonArg("out_ptr", "pointer", out.name, dtype))
        if checks:
            args.append(TritonArg("err_ptr", "pointer", INDEX_ERRORS, torch.int64))
        args += sz.args
        return TritonKernel(
            name=kname,
            source=kernel_source(
                helpers, kname, [a.name for a in args] + ["BLOCK: tl.constexpr"], body
            ),
            args=args,
            grid=(ceil_div(positions, BLOCK), _ONE, _ONE),
            constexprs={"BLOCK": BLOCK},
            num_warps=4,
            writes={out.name},
            index_checks=[f"{op}: index"] if checks else [],
        )

    launches = []
    if not call.in_place:  # type: ignore[attr-defined]
        launches.append(_copy_kernel(f"{name}_copy", self_v, out))
    if reduce != "none" and not params["include_self"]:
        sz = SizeArgs()
        ident = _identity(reduce, dtype)
        body = [
            *walk(sz),
            f"tl.store(out_ptr + dst, tl.full([BLOCK], {ident}, {tl_type(dtype)}), mask=ok)",
        ]
        launches.append(kernel("_init", body, "", sz, checks=False))
    sz = SizeArgs()
    body = walk(sz)
    body.append("zero = tl.zeros([BLOCK], tl.int64)")
    body += _report("bad", "pos", sz(self_sizes[dim]), 0)
    if src_v is not None:
        body.append("v = tl.load(src_ptr + src_off, mask=ok, other=0)")
    else:
        body.append(
            f"v = tl.full([BLOCK], {_literal(params.get('value'), dtype)}, {tl_type(dtype)})"
        )
    helpers, statement = _update(dtype, reduce, "dst", "v", "ok")
    body.append(statement)
    launches.append(kernel("", body, helpers, sz, checks=True))
    return launches


# --------------------------------------------------------------------------- #
# index_put                                                                    #
# --------------------------------------------------------------------------- #


def _index_put(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    name = call.name  # type: ignore[attr-defined]
    _no_epilogue("index_put", epilogue)
    params = node.params
    op = params.get("op", "index_put")
    self_v, values_v = node.inputs[0], node.inputs[1]
    indices = node.inputs[2:]
    out = node.outputs[0]
    dtype = out.dtype
    dims = [int(d) for d in params["index_dims"]]
    lead, nb = int(params["lead"]), int(params["batch_rank"])
    self_sizes = list(self_v.layout.sizes)
    out_strides = _contiguous_strides(self_sizes)
    vsizes, vstrides = view_shape(values_v)
    batch_sizes = vsizes[lead : lead + nb]
    batch_strides = vstrides[lead : lead + nb]
    rest_sizes = vsizes[:lead] + vsizes[lead + nb :]
    rest_vstrides = vstrides[:lead] + vstrides[lead + nb :]
    rest_ostrides = [s for d, s in enumerate(out_strides) if d not in dims]
    batch = sympy.Mul(*batch_sizes) if batch_sizes else _ONE
    rest = sympy.Mul(*rest_sizes) if rest_sizes else _ONE
    wide = needs_int64(self_v, values_v, *indices, [*self_sizes, 2])

    rest_static = static(rest)
    block_r = min(next_pow2(rest_static), BLOCK) if rest_static is not None else 256
    block_b = max(1, BLOCK // block_r)
    if static(batch) is not None:
        block_b = max(1, min(block_b, next_pow2(static(batch))))
    sz = SizeArgs()
    tiles_r = ceil_div(rest, block_r)
    body = [
        "p = tl.program_id(0)",
        *(["p = p.to(tl.int64)"] if wide else []),
        f"b = (p // {sz(tiles_r)}) * BLOCK_B + tl.arange(0, BLOCK_B)",
        f"r = (p % {sz(tiles_r)}) * BLOCK_R + tl.arange(0, BLOCK_R)",
        f"b_mask = b < {sz(batch)}",
        f"r_mask = r < {sz(rest)}",
        "zero = tl.zeros([BLOCK_B], tl.int64)",
    ]
    index_strides = [list(v.layout.strides) for v in indices]
    decompose, boffs = strided_offset("b", batch_sizes, [*index_strides, batch_strides], sz, "b_")
    body += decompose
    body.append("ok = b_mask")
    base_terms = []
    for k, (d, off) in enumerate(zip(dims, boffs[:-1], strict=True)):
        size = sz(self_sizes[d])
        body += [
            f"raw{k} = tl.load(index{k}_ptr + {off}, mask=b_mask, other=0)",
            f"pos{k} = tl.where(raw{k} < 0, raw{k} + {size}, raw{k})",
            f"bad{k} = b_mask & ((pos{k} < 0) | (pos{k} >= {size}))",
            *_report(f"bad{k}", f"raw{k}", size, k),
            f"ok = ok & ~bad{k}",
        ]
        stride = sympy.sympify(out_strides[d])
        base_terms.append(f"pos{k}" if stride == 1 else f"pos{k} * {sz(stride)}")
    body.append(f"out_base = {' + '.join(base_terms)}")
    body.append(f"values_base = {boffs[-1]}")
    decompose, (ooff, voff) = strided_offset(
        "r", rest_sizes, [rest_ostrides, rest_vstrides], sz, "r_"
    )
    body += decompose
    body += [
        "mask = ok[:, None] & r_mask[None, :]",
        f"dst = out_base[:, None] + ({ooff})[None, :]",
        f"v = tl.load(values_ptr + values_base[:, None] + ({voff})[None, :], mask=mask, other=0)",
    ]
    helpers, statement = _update(
        dtype, "sum" if params["accumulate"] else "none", "dst", "v", "mask"
    )
    body.append(statement)

    args = [pointer_arg("values_ptr", values_v, dtype)]
    args += [pointer_arg(f"index{k}_ptr", v, torch.int64) for k, v in enumerate(indices)]
    args += [
        TritonArg("out_ptr", "pointer", out.name, dtype),
        TritonArg("err_ptr", "pointer", INDEX_ERRORS, torch.int64),
        *sz.args,
    ]
    params_ = [a.name for a in args] + ["BLOCK_B: tl.constexpr", "BLOCK_R: tl.constexpr"]
    checks = [
        f"{op}: index" if len(indices) == 1 else f"{op}: index {k}" for k in range(len(indices))
    ]
    main = TritonKernel(
        name=name,
        source=kernel_source(helpers, name, params_, body),
        args=args,
        grid=(ceil_div(batch, block_b) * tiles_r, _ONE, _ONE),
        constexprs={"BLOCK_B": block_b, "BLOCK_R": block_r},
        num_warps=4,
        writes={out.name},
        index_checks=checks,
    )
    launches = [] if call.in_place else [_copy_kernel(f"{name}_copy", self_v, out)]  # type: ignore[attr-defined]
    return [*launches, main]


TEMPLATES = {"scatter": _scatter, "index_put": _index_put}
