"""C++ emission for the sort extern kernels (aotc_cpu_sort.h).

[Note: sort kernel operands] What each kind expects from lowering
(aot/lowering/sort.py):
- every kind: input 0 is the operand, realized and read in place through
  its strides (a 0-d operand arrives as a 1-d view of one element);
  params["dim"] is the dim to work along, in [0, rank).
- sort: outputs (values, indices) of the operand's sizes; params
  descending, stable, radix_1d (see the kernel).
- topk: outputs (values, indices) with the dim of size k; params k (an int
  or a size expression), largest, sorted.
- kthvalue: outputs (values, indices) without the dim (keepdim only changes
  the declared sizes, not the memory); param k (1-based).
- median (median.dim / nanmedian.dim): outputs (values, indices); param
  ignore_nan.
- median_all (median / nanmedian of all elements): input 0 is a 1-d view of
  every element, output is one value; param ignore_nan.
- mode: outputs (values, indices).
Outputs missing from the buffer table (dead) are passed as nullptr.
"""

from __future__ import annotations

from collections.abc import Callable

from .extern_calls import Operands


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _operand(ops: Operands) -> list[str]:
    """Declares |x|, the kn::SortOperand<T> view of input 0."""
    x = ops.input(0)
    sizes, strides = ops.sizes(x), ops.strides(x)
    if not sizes:
        raise ValueError(f"{ops.node.name}: sort kernels take operands of rank >= 1")
    dim = int(ops.params.get("dim", 0))
    return [
        f"const int64_t sizes[] = {{{', '.join(sizes)}}};",
        f"const int64_t strides[] = {{{', '.join(strides)}}};",
        f"const kn::SortOperand<T> x{{{ops.ptr(x)}, {len(sizes)}, sizes, strides, {dim}}};",
    ]


def _outputs(ops: Operands) -> list[str]:
    return [
        f"T* values = {ops.out_ptr(0, optional=True)};",
        f"int64_t* indices = {ops.out_ptr(1, 'int64_t', optional=True)};",
    ]


def _emit_sort(ops: Operands) -> list[str]:
    params = ops.params
    return [
        *_operand(ops),
        *_outputs(ops),
        "// descending, stable, radix_1d",
        f"return kn::sort<T>(ctx, x, {_bool(params['descending'])}, "
        f"{_bool(params['stable'])}, {_bool(params['radix_1d'])}, values, indices);",
    ]


def _emit_topk(ops: Operands) -> list[str]:
    params = ops.params
    return [
        *_operand(ops),
        *_outputs(ops),
        "// k, largest, sorted",
        f"return kn::topk<T>(ctx, x, {ops.size(params['k'])}, {_bool(params['largest'])}, "
        f"{_bool(params['sorted'])}, values, indices);",
    ]


def _emit_kthvalue(ops: Operands) -> list[str]:
    return [
        *_operand(ops),
        *_outputs(ops),
        f"return kn::kthvalue<T>(ctx, x, {ops.size(ops.params['k'])}, values, indices);",
    ]


def _emit_median(ops: Operands) -> list[str]:
    ignore_nan = _bool(ops.params["ignore_nan"])
    return [
        *_operand(ops),
        *_outputs(ops),
        "// ignore_nan (nanmedian)",
        f"return kn::median<T>(ctx, x, {ignore_nan}, values, indices);",
    ]


def _emit_median_all(ops: Operands) -> list[str]:
    ignore_nan = _bool(ops.params["ignore_nan"])
    return [
        *_operand(ops),
        f"T* out = {ops.out_ptr(0)};",
        "// ignore_nan (nanmedian)",
        f"return kn::median_all<T>(ctx, x, {ignore_nan}, out);",
    ]


def _emit_mode(ops: Operands) -> list[str]:
    return [*_operand(ops), *_outputs(ops), "return kn::mode<T>(ctx, x, values, indices);"]


EMITTERS: dict[str, Callable[[Operands], list[str]]] = {
    "sort": _emit_sort,
    "topk": _emit_topk,
    "kthvalue": _emit_kthvalue,
    "median": _emit_median,
    "median_all": _emit_median_all,
    "mode": _emit_mode,
}
