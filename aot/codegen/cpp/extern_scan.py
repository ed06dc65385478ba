"""C++ emission for the scan extern kernels (aotc_cpu_scan.h).

[Note: scan kernel operands] What lowering (aot/lowering/scan.py) hands
over: one input, a strided view of any rank (0-d included) read in place;
params["dim"], the scan dim, normalised to [0, rank) (0 for a 0-d input);
outputs contiguous with the input's sizes. cumsum and cumprod may change
dtype (the output's ctype is T, the input's is In); logcumsumexp, cummax and
cummin keep it. cummax/cummin have outputs (values, int64 indices); either
may be dead (nullptr).
"""

from __future__ import annotations

from collections.abc import Callable

from .extern_calls import Operands, ctype_of


def _shape(ops: Operands) -> list[str]:
    """Declares In, sizes, strides and shape (a 0-d input is scanned as [1])."""
    x = ops.input(0)
    sizes, strides = ops.sizes(x), ops.strides(x)
    if not sizes:
        sizes, strides = ["1"], ["0"]
    dim = int(ops.params["dim"])
    if not 0 <= dim < len(sizes):
        raise ValueError(f"{ops.node.name}: scan dim {dim} out of range for {len(sizes)} dims")
    return [
        f"using In = {ctype_of(x.dtype)};",
        f"const int64_t sizes[] = {{{', '.join(sizes)}}};",
        f"const int64_t strides[] = {{{', '.join(strides)}}};",
        f"const kn::ScanShape shape{{{len(sizes)}, sizes, strides, {dim}}};",
        f"const In* x = {ops.ptr(x, 'In')};",
    ]


def _accumulate(function: str) -> Callable[[Operands], list[str]]:
    def emit(ops: Operands) -> list[str]:
        out = ops.out_ptr(0, optional=True)
        if out == "nullptr":
            return ["return AOTC_ABI_OK;  // the output is dead"]
        return [
            *_shape(ops),
            f"T* out = {out};",
            f"return kn::{function}<In, T>(ctx, shape, x, out);",
        ]

    return emit


def _extreme(function: str) -> Callable[[Operands], list[str]]:
    def emit(ops: Operands) -> list[str]:
        return [
            *_shape(ops),
            f"T* values = {ops.out_ptr(0, optional=True)};",
            f"int64_t* indices = {ops.out_ptr(1, 'int64_t', optional=True)};",
            f"return kn::{function}<T>(ctx, shape, x, values, indices);",
        ]

    return emit


EMITTERS: dict[str, Callable[[Operands], list[str]]] = {
    "cumsum": _accumulate("cumsum"),
    "cumprod": _accumulate("cumprod"),
    "logcumsumexp": _accumulate("logcumsumexp"),
    "cummax": _extreme("cummax"),
    "cummin": _extreme("cummin"),
}
