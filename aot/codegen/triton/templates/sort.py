"""Triton templates for the sort extern kernels: sort, topk, kthvalue, median
(per dim, and median_all of every element), nanmedian and mode (operands:
[Note: sort kernel operands] in aot/codegen/cpp/extern_sort.py).

[Note: Triton sorts] Every kind sorts whole rows inside one program: a row of
n elements (n static, at most MAX_SORT_ROW) is padded to a power of two and
ROWS rows are sorted side by side by a bitonic network on (key, index) pairs,
held in registers as a [2] * log2(ROWS * BLOCK) hypercube (each
compare-and-swap finds its partner with tl.xor_sum along one axis, the
technique of tl.sort, which sorts single values only).
- The key is an integer whose signed order is the CPU's comparator order
  ([Note: sort kernel numerics] in aotc_cpu_sort.h): floats (bf16 as float32)
  by their bits with the magnitude flipped for negatives, -0.0 made +0.0 and
  every NaN the canonical quiet NaN, which is then above +inf: ascending
  puts NaN last, all NaNs tie, -0.0 ties 0.0. Integers are their own key.
  Descending negates the order (~key). Padding takes the largest key.
- Ties are broken by the index, so the order is the stable one, descending
  too: values and indices equal the CPU's stable sort; where torch leaves
  the order of ties open (sort(stable=False), topk, kthvalue, mode's index)
  the result is this stable choice, which may differ from the CPU's
  (libstdc++'s introsort / nth_element) among equal elements.
- Values are read back from the input at the sorted indices, so they keep
  the element's bits (topk writes a bf16 NaN as 0x7FC0, as the CPU does).
- median / nanmedian pick sorted position (n - 1) // 2 (the CPU breaks ties
  by index too, so indices match), median returns the first NaN of a row
  when it has one; nanmedian's position skips the NaNs. mode takes the
  longest run of equal keys, the smallest value among equally long runs,
  and the index of the run's last element in stable order (the largest
  index holding the value). NaNs are one run for mode (the CPU's std::sort
  with NaN is unspecified).
Rows longer than MAX_SORT_ROW, and rows or k of dynamic size, raise
TritonCodegenError: one program holds a whole row in registers.
"""

from __future__ import annotations

import sympy
import torch

from ...triton.context import TritonContext, TritonEpilogue
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

# The longest row one program sorts (pairs in registers: 16384 x 8-12 bytes
# over 16 warps).
MAX_SORT_ROW = 16384
# Rows are batched into programs of about this many elements.
TILE = 2048

_HELPERS = """
@triton.jit
def _aotc_axis_bit(n_dims: tl.constexpr, j: tl.constexpr):
    # 0/1 along hypercube axis n_dims - 1 - j: bit j of the flat position.
    bit = tl.arange(0, 2)
    return tl.reshape(bit, [1] * (n_dims - j - 1) + [2] + [1] * j)


@triton.jit
def _aotc_compare_swap(k, v, flip, j: tl.constexpr, n_dims: tl.constexpr):
    # Pairs 2**j apart: the left keeps the smaller (key, index) unless flipped.
    axis: tl.constexpr = n_dims - 1 - j
    pk = k ^ tl.xor_sum(k, axis, True)
    pv = v ^ tl.xor_sum(v, axis, True)
    greater = (k > pk) | ((k == pk) & (v > pv))
    swap = greater != ((flip ^ _aotc_axis_bit(n_dims, j)) != 0)
    return tl.where(swap, pk, k), tl.where(swap, pv, v)


@triton.jit
def _aotc_merge(k, v, flip, stage: tl.constexpr, n_dims: tl.constexpr):
    for s in tl.static_range(stage):
        k, v = _aotc_compare_swap(k, v, flip, stage - 1 - s, n_dims)
    return k, v


@triton.jit
def _aotc_sort_pairs(k, v, ROWS: tl.constexpr, LOG_N: tl.constexpr, LOG_ALL: tl.constexpr):
    # Sorts each row of [ROWS, 2**LOG_N] (key, index) pairs ascending.
    k = tl.reshape(k, [2] * LOG_ALL)
    v = tl.reshape(v, [2] * LOG_ALL)
    for stage in tl.static_range(1, LOG_N + 1):
        if stage < LOG_N:
            k, v = _aotc_merge(k, v, _aotc_axis_bit(LOG_ALL, stage), stage, LOG_ALL)
        else:
            k, v = _aotc_merge(k, v, 0, stage, LOG_ALL)
    return tl.reshape(k, [ROWS, 2**LOG_N]), tl.reshape(v, [ROWS, 2**LOG_N])


@triton.jit
def _aotc_runs(k1, c1, k2, c2):
    # Length of the run of equal keys ending here (keys sorted).
    return k2, tl.where(k1 == k2, c1 + c2, c2)
"""

_FLOAT_KEYS = {
    # element dtype -> (compare as, int of that width, canonical NaN bits, magnitude mask)
    torch.float32: ("tl.float32", "tl.int32", "0x7FC00000", "0x7FFFFFFF"),
    torch.bfloat16: ("tl.float32", "tl.int32", "0x7FC00000", "0x7FFFFFFF"),
    torch.float16: ("tl.float32", "tl.int32", "0x7FC00000", "0x7FFFFFFF"),
    torch.float64: ("tl.float64", "tl.int64", "0x7FF8000000000000", "0x7FFFFFFFFFFFFFFF"),
}


def _key_lines(dtype: torch.dtype, descending: bool) -> tuple[list[str], str]:
    """Statements turning the loaded tile `x` into `key` (padding included)
    and, for floats, `xf` (x as compared); returns them and the key's max."""
    if dtype in _FLOAT_KEYS:
        as_float, as_int, nan, magnitude = _FLOAT_KEYS[dtype]
        lines = [
            f"xf = x.to({as_float})",
            f"b = xf.to({as_int}, bitcast=True)",
            f"b = tl.where(xf != xf, {nan}, tl.where(xf == 0, 0, b))",
            f"key = tl.where(b < 0, b ^ {magnitude}, b)",
        ]
        big = magnitude
    elif dtype == torch.int64:
        lines, big = ["key = x"], "0x7FFFFFFFFFFFFFFF"
    else:
        lines, big = ["key = x.to(tl.int32)"], "0x7FFFFFFF"
    if descending:
        lines.append("key = ~key")
    lines.append(f"key = tl.where(valid, key, {big})")
    return lines, big


class _Rows:
    """The rows of a sort-family operand and the tile that holds them."""

    def __init__(self, call: object, kind: str) -> None:
        node = call.node  # type: ignore[attr-defined]
        self.x = node.inputs[0]
        sizes, strides = view_shape(self.x)
        if not sizes:
            raise TritonCodegenError(f"{kind}: sort kernels take operands of rank >= 1")
        self.dim = int(node.params.get("dim", 0))
        n = static(sizes[self.dim])
        if n is None:
            raise TritonCodegenError(
                f"{kind}: the sorted dim has dynamic size {sizes[self.dim]}; the GPU kernel "
                "sorts whole rows in one program and needs a static row length"
            )
        if n > MAX_SORT_ROW:
            raise TritonCodegenError(
                f"{kind}: rows of {n} elements are longer than one Triton program sorts "
                f"({MAX_SORT_ROW}); no multi-program GPU sort yet"
            )
        self.n = n
        self.sz = SizeArgs()
        self.other_sizes = sizes[: self.dim] + sizes[self.dim + 1 :]
        self.other_strides = strides[: self.dim] + strides[self.dim + 1 :]
        self.count = sympy.Mul(*self.other_sizes) if self.other_sizes else sympy.Integer(1)
        self.inner = sympy.Mul(*sizes[self.dim + 1 :]) if self.dim + 1 < len(sizes) else 1
        self.stride = strides[self.dim]
        self.block = max(2, next_pow2(n))
        rows = max(1, TILE // self.block)
        if static(self.count) is not None:
            rows = max(1, min(rows, next_pow2(static(self.count))))
        self.rows = rows
        self.wide = needs_int64(self.x, [*sizes, 2])

    def prologue(self, descending: bool) -> list[str]:
        """Loads the tile and sorts it: `sk` keys, `si` indices (int32)."""
        sz = self.sz
        body = [
            "rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)",
            *(["rows = rows.to(tl.int64)"] if self.wide else []),
            f"row_mask = rows < {sz(self.count)}",
        ]
        decompose, (base,) = strided_offset(
            "rows", self.other_sizes, [self.other_strides], sz, "r_"
        )
        body += decompose
        body += [
            f"in_base = {base}",
            "cols = tl.arange(0, BLOCK)",
            f"valid = row_mask[:, None] & (cols < {self.n})[None, :]",
            f"x = tl.load(x_ptr + in_base[:, None] + cols[None, :] * {sz(self.stride)}, "
            "mask=valid, other=0)",
        ]
        keys, _ = _key_lines(self.x.dtype, descending)
        body += keys
        body += [
            "idx = cols[None, :] + rows[:, None].to(tl.int32) * 0",
            "sk, si = _aotc_sort_pairs(key, idx, ROWS, LOG_N, LOG_ALL)",
        ]
        return body

    def gather(self, index: str, mask: str) -> str:
        """The input elements at positions |index| ("si": [ROWS, BLOCK],
        "sel": [ROWS]) of each row."""
        base = "in_base" if index == "sel" else "in_base[:, None]"
        return f"tl.load(x_ptr + {base} + {index} * {self.sz(self.stride)}, mask={mask}, other=0)"

    def kernel(
        self, call: object, body: list[str], outputs: list[tuple[str, str, torch.dtype]]
    ) -> TritonKernel:
        node = call.node  # type: ignore[attr-defined]
        name = call.name  # type: ignore[attr-defined]
        args = [pointer_arg("x_ptr", self.x)]
        args += [TritonArg(param, "pointer", buffer, dtype) for param, buffer, dtype in outputs]
        args += self.sz.args
        params = [a.name for a in args] + [
            f"{c}: tl.constexpr" for c in ("ROWS", "BLOCK", "LOG_N", "LOG_ALL")
        ]
        log_n = self.block.bit_length() - 1
        log_all = (self.rows * self.block).bit_length() - 1
        grid = sympy.Integer(0) if self.n == 0 else ceil_div(self.count, self.rows)
        return TritonKernel(
            name=name,
            source=kernel_source(_HELPERS, name, params, body),
            args=args,
            grid=(grid, sympy.Integer(1), sympy.Integer(1)),
            constexprs={"ROWS": self.rows, "BLOCK": self.block, "LOG_N": log_n, "LOG_ALL": log_all},
            num_warps=max(1, min(16, self.rows * self.block // 512)),
            writes={b.name for b in node.outputs},
        )


def _outputs(node: object) -> list[tuple[str, str, torch.dtype]]:
    values, indices = node.outputs  # type: ignore[attr-defined]
    return [("values_ptr", values.name, values.dtype), ("indices_ptr", indices.name, torch.int64)]


def _store_row_elements(rows: _Rows, m: sympy.Expr | int, keep: str, bf16_nan: bool) -> list[str]:
    """Stores sorted positions [0, m) of each row (values gathered at `si`)."""
    sz = rows.sz
    if rows.inner == 1:
        out_base = f"rows * {sz(m)}"
    else:
        out_base = f"(rows // {sz(rows.inner)}) * {sz(m * rows.inner)} + rows % {sz(rows.inner)}"
    lines = [
        f"out_mask = row_mask[:, None] & ({keep})[None, :]",
        f"vals = {rows.gather('si', 'out_mask')}",
    ]
    if bf16_nan:  # topk writes through float: a NaN comes out as 0x7FC0
        lines += [
            "nan_bits = tl.where(vals != vals, 0x7FC0, vals.to(tl.int16, bitcast=True))",
            "vals = nan_bits.to(tl.int16).to(tl.bfloat16, bitcast=True)",
        ]
    dst = f"out_base[:, None] + cols[None, :] * {sz(rows.inner)}"
    return [
        f"out_base = {out_base}",
        *lines,
        f"tl.store(values_ptr + {dst}, vals, mask=out_mask)",
        f"tl.store(indices_ptr + {dst}, si.to(tl.int64), mask=out_mask)",
    ]


def _store_selected(rows: _Rows) -> list[str]:
    """Stores the element at sorted position `pos` ([ROWS]) of each row."""
    return [
        "sel = tl.sum(tl.where(cols[None, :] == pos[:, None], si, 0), axis=1)",
        f"val = {rows.gather('sel', 'row_mask')}",
        "tl.store(values_ptr + rows, val, mask=row_mask)",
        "tl.store(indices_ptr + rows, sel.to(tl.int64), mask=row_mask)",
    ]


def _no_epilogue(kind: str, epilogue: TritonEpilogue | None) -> None:
    if epilogue is not None:
        raise TritonCodegenError(f"{kind} takes no epilogue")


def _static_k(kind: str, k: object) -> int:
    value = static(k)  # type: ignore[arg-type]
    if value is None:
        raise TritonCodegenError(f"{kind}: k = {k} is dynamic; the GPU kernel needs a static k")
    return value


def _sort(call: object, ctx: TritonContext, epilogue: TritonEpilogue | None) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("sort", epilogue)
    rows = _Rows(call, "sort")
    body = rows.prologue(bool(node.params["descending"]))
    body += _store_row_elements(rows, rows.n, f"cols < {rows.n}", False)
    return [rows.kernel(call, body, _outputs(node))]


def _topk(call: object, ctx: TritonContext, epilogue: TritonEpilogue | None) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("topk", epilogue)
    rows = _Rows(call, "topk")
    k = _static_k("topk", node.params["k"])
    if not 0 <= k <= rows.n:
        raise TritonCodegenError(f"topk: k = {k} out of range [0, {rows.n}]")
    body = rows.prologue(bool(node.params["largest"]))
    body += _store_row_elements(rows, k, f"cols < {k}", rows.x.dtype == torch.bfloat16)
    kernel = rows.kernel(call, body, _outputs(node))
    if k == 0:
        kernel.grid = (sympy.Integer(0), sympy.Integer(1), sympy.Integer(1))
    return [kernel]


def _kthvalue(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("kthvalue", epilogue)
    rows = _Rows(call, "kthvalue")
    k = _static_k("kthvalue", node.params["k"])
    if not 1 <= k <= rows.n:
        raise TritonCodegenError(f"kthvalue: k = {k} out of range [1, {rows.n}]")
    body = rows.prologue(False)
    body.append(f"pos = tl.full([ROWS], {k - 1}, tl.int32)")
    body += _store_selected(rows)
    return [rows.kernel(call, body, _outputs(node))]


def _nan_count(rows: _Rows) -> list[str]:
    if rows.x.dtype in _FLOAT_KEYS:
        return ["num_nan = tl.sum(((xf != xf) & valid).to(tl.int32), axis=1)"]
    return ["num_nan = tl.zeros([ROWS], tl.int32)"]


def _median_position(n: int, ignore_nan: bool) -> str:
    if ignore_nan:  # the CPU's C++ division: an all-NaN row takes position 0
        return f"pos = tl.maximum({n} - num_nan - 1, 0) // 2"
    # median: the first NaN (stable order puts the NaNs last, by index).
    return f"pos = tl.where(num_nan > 0, {n} - num_nan, {(n - 1) // 2})"


def _median(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("median", epilogue)
    rows = _Rows(call, "median")
    body = rows.prologue(False)
    body += _nan_count(rows)
    body.append(_median_position(rows.n, bool(node.params["ignore_nan"])))
    body += _store_selected(rows)
    return [rows.kernel(call, body, _outputs(node))]


def _median_all(
    call: object, ctx: TritonContext, epilogue: TritonEpilogue | None
) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("median_all", epilogue)
    ignore_nan = bool(node.params["ignore_nan"])
    out = node.outputs[0]
    outputs = [("out_ptr", out.name, out.dtype)]
    floating = out.dtype in _FLOAT_KEYS
    nan = 'float("nan")' if floating else "0"
    rows = _Rows(call, "median_all")
    if rows.n == 0:  # eager: NaN for an empty input
        rows.n = 1  # one masked-off element: the kernel only stores
        body = [f"tl.store(out_ptr, tl.full([], {nan}, {tl_type(out.dtype)}))"]
        return [rows.kernel(call, body, outputs)]
    body = rows.prologue(False)
    body += _nan_count(rows)
    body.append(_median_position(rows.n, ignore_nan))
    body += [
        "sel = tl.sum(tl.where(cols[None, :] == pos[:, None], si, 0), axis=1)",
        f"val = {rows.gather('sel', 'row_mask')}",
    ]
    if floating and not ignore_nan:  # the canonical quiet NaN, as the CPU
        if out.dtype == torch.bfloat16:  # by its bits (no bf16 constants in the interpreter)
            body += [
                "val_bits = tl.where(num_nan > 0, 0x7FC0, val.to(tl.int16, bitcast=True))",
                "val = val_bits.to(tl.int16).to(tl.bfloat16, bitcast=True)",
            ]
        else:
            body.append(f"val = tl.where(num_nan > 0, {nan}, val)")
    body.append("tl.store(out_ptr + rows, val, mask=row_mask)")
    return [rows.kernel(call, body, outputs)]


def _mode(call: object, ctx: TritonContext, epilogue: TritonEpilogue | None) -> list[TritonKernel]:
    node = call.node  # type: ignore[attr-defined]
    _no_epilogue("mode", epilogue)
    rows = _Rows(call, "mode")
    body = rows.prologue(False)
    body += [
        "_, run = tl.associative_scan((sk, tl.full(sk.shape, 1, tl.int32)), 1, _aotc_runs)",
        f"real = row_mask[:, None] & (cols < {rows.n})[None, :]",
        "longest = tl.max(tl.where(real, run, 0), axis=1)",
        # The first run reaching the longest length ends at its first such
        # position: the smallest value among the most frequent.
        "pos = tl.min(tl.where(real & (run == longest[:, None]), cols[None, :], BLOCK), axis=1)",
    ]
    body += _store_selected(rows)
    return [rows.kernel(call, body, _outputs(node))]


TEMPLATES = {
    "sort": _sort,
    "topk": _topk,
    "kthvalue": _kthvalue,
    "median": _median,
    "median_all": _median_all,
    "mode": _mode,
}
