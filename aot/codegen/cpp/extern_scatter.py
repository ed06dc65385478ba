"""C++ emission for the scatter extern kernels (aotc_cpu_scatter.h).

What each kind expects from lowering ([Note: scatter kernels] in
aot/lowering/scatter.py):
- scatter: inputs self, index (int64), src (absent when params["value"] is a
  scalar), all of one rank >= 1; params op, dim, reduce ("none", "sum",
  "prod", "mean", "amax", "amin"), include_self, float_acc.
- index_put: inputs self, values (broadcast to the shape of self[indices]),
  then one int64 index view per indexed dim, each of the batch shape; params
  op, accumulate, index_dims, lead (where the batch dims sit in values),
  batch_rank.
Kernels are told their debug handle ("<extern name>:0", as the wrapper
numbers calls) so an out-of-range index names the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ...ir.nodes import Buffer, ReinterpretView
from .extern_calls import Operands

_REDUCE = {
    "none": "kNone",
    "sum": "kSum",
    "prod": "kProd",
    "mean": "kMean",
    "amax": "kMax",
    "amin": "kMin",
}


def _handle(ops: Operands) -> str:
    return f'"{ops.node.name}:0"'


def _what(ops: Operands) -> str:
    return f'"{ops.params.get("op", ops.node.kind)}: index"'


def _layout(sizes: Sequence[str], strides: Sequence[str]) -> str:
    """A kn::ScatterLayout initializer."""
    if not sizes:
        return "kn::ScatterLayout{0, {}, {}}"
    return f"kn::ScatterLayout{{{len(sizes)}, {{{', '.join(sizes)}}}, {{{', '.join(strides)}}}}}"


def _of(ops: Operands, value: Buffer | ReinterpretView) -> str:
    return _layout(ops.sizes(value), ops.strides(value))


def _scalar(value: bool | int | float | None, dtype: torch.dtype) -> str:
    """|value| (already converted to |dtype| by lowering) as a T expression."""
    if value is None:
        value = 0
    if not dtype.is_floating_point:
        number = int(value)
        if number == -(2**63):
            return "static_cast<T>(-9223372036854775807LL - 1)"
        return f"static_cast<T>({number}LL)"
    number = float(value)
    if math.isnan(number):
        text = "std::numeric_limits<double>::quiet_NaN()"
    elif math.isinf(number):
        text = f"{'-' if number < 0 else ''}std::numeric_limits<double>::infinity()"
    else:
        text = repr(number)
    if dtype == torch.bfloat16:
        return f"kn::from_f32<T>(static_cast<float>({text}))"
    return f"static_cast<T>({text})"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _emit_scatter(ops: Operands) -> list[str]:
    node, params = ops.node, ops.params
    self_v, index_v = ops.input(0), ops.input(1)
    has_src = len(node.inputs) > 2
    dtype = node.outputs[0].dtype
    lines = [
        f"const kn::ScatterLayout self_l = {_of(ops, self_v)};",
        f"const kn::ScatterLayout index_l = {_of(ops, index_v)};",
    ]
    if has_src:
        src = ops.input(2)
        lines += [
            f"const kn::ScatterLayout src_l = {_of(ops, src)};",
            f"const T* src = {ops.ptr(src)};",
        ]
    else:
        lines += ["const kn::ScatterLayout src_l = index_l;", "const T* src = nullptr;"]
    lines += [
        f"const T value = {_scalar(params.get('value'), dtype)};",
        f"const T* self = {ops.ptr(self_v)};",
        f"const int64_t* index = {ops.ptr(index_v, 'int64_t')};",
        f"T* out = {ops.out_ptr(0)};",
        "// handle, what, self, dim, index, src, value, reduce, include_self, float_acc, out",
        f"return kn::scatter_kernel<T>(ctx, {_handle(ops)}, {_what(ops)}, self_l, self, "
        f"{int(params['dim'])}, index_l, index, src_l, src, value, "
        f"kn::ScatterReduce::{_REDUCE[params['reduce']]}, {_bool(params['include_self'])}, "
        f"{_bool(params.get('float_acc', True))}, out);",
    ]
    return lines


def _emit_index_put(ops: Operands) -> list[str]:
    node, params = ops.node, ops.params
    self_v, values_v = ops.input(0), ops.input(1)
    indices = node.inputs[2:]
    dims = [int(d) for d in params["index_dims"]]
    lead, nb = int(params["lead"]), int(params["batch_rank"])
    vsizes, vstrides = ops.sizes(values_v), ops.strides(values_v)
    batch = slice(lead, lead + nb)
    rest_sizes = vsizes[:lead] + vsizes[lead + nb :]
    rest_strides = vstrides[:lead] + vstrides[lead + nb :]
    lines = [
        "kn::IndexPutArgs args{};",
        f"args.self = {_of(ops, self_v)};",
        f"args.num_indices = {len(indices)};",
    ]
    for k, (d, view) in enumerate(zip(dims, indices, strict=True)):
        lines += [
            f"args.index_dim[{k}] = {d};",
            f"args.index[{k}] = {ops.ptr(view, 'int64_t')};",
            f"args.index_layout[{k}] = {_of(ops, view)};",
        ]
    lines += [
        f"args.values_batch = {_layout(vsizes[batch], vstrides[batch])};",
        f"args.values_rest = {_layout(rest_sizes, rest_strides)};",
        f"args.accumulate = {_bool(params['accumulate'])};",
        f"const T* self = {ops.ptr(self_v)};",
        f"const T* values = {ops.ptr(values_v)};",
        f"T* out = {ops.out_ptr(0)};",
        f"return kn::index_put_kernel<T>(ctx, {_handle(ops)}, {_what(ops)}, args, self, values, "
        "out);",
    ]
    return lines


EMITTERS: dict[str, Callable[[Operands], list[str]]] = {
    "scatter": _emit_scatter,
    "index_put": _emit_index_put,
}
