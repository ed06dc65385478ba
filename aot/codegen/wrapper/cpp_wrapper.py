"""The C++ wrapper: model.cc, implementing the model ABI (docs/ABI.md) around
the generated kernels.

[Note: wrapper layout] The generated library is model.cc plus kernels_<k>.cc:
- kernels_<k>.cc hold the kernel sources as the kernel generators wrote them
  (``static int32_t name(const aotc_rt::KernelContext&)``), each file ending
  with one non-static trampoline per kernel, ``aotc_model::run_<name>``, which
  model.cc calls. The files compile in parallel. Kernels go to files in
  schedule order, balanced by source size, so the split depends only on the
  model, never on the build machine.
- model.cc holds the static description (describe), create (checks and keeps
  the constant pointers), plan (binds the size symbols from the input sizes,
  checks static dims, ranges and relations with the ABI's messages, computes
  output sizes and workspace bytes) and run (fills the buffer table and the
  symbol array, calls each kernel in schedule order behind a
  ``// <debug handle>`` comment, returns the first error, writes mutated
  inputs and state back).
Only the five ``aotc_model_*`` functions have default visibility; everything
else is in an anonymous or the ``aotc_model`` namespace, hidden by
-fvisibility=hidden and the version script. generate_wrapper() returns the
same library as a single translation unit (kernels inline), for tests and tools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import Template

import sympy
import torch

from ... import __version__
from ...ir.graph import LoweredGraph
from ...ir.nodes import Buffer, BufferKind
from ...scheduler.schedule import LoopKernel, Placement, Schedule, Storage
from .buffer_table import BufferSlot, buffer_slots, check_placements
from .sizes import SizePrinter, is_static, size_text

INT64_MAX = 2**63 - 1
KERNEL_HEADERS = (
    "aotc_cpu.h",
    "aotc_cpu_math.h",
    "aotc_cpu_kernels.h",
    "aotc_cpu_scan.h",
    "aotc_cpu_sort.h",
    "aotc_cpu_scatter.h",
)
# About this many characters of kernel source per kernels_<k>.cc, in at most
# MAX_KERNEL_FILES files (each file parses the support headers once).
KERNEL_FILE_CHARS = 24_000
MAX_KERNEL_FILES = 8

ABI_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "AOTC_ABI_DTYPE_FLOAT32",
    torch.float16: "AOTC_ABI_DTYPE_FLOAT16",
    torch.bfloat16: "AOTC_ABI_DTYPE_BFLOAT16",
    torch.float64: "AOTC_ABI_DTYPE_FLOAT64",
    torch.int8: "AOTC_ABI_DTYPE_INT8",
    torch.uint8: "AOTC_ABI_DTYPE_UINT8",
    torch.int16: "AOTC_ABI_DTYPE_INT16",
    torch.int32: "AOTC_ABI_DTYPE_INT32",
    torch.int64: "AOTC_ABI_DTYPE_INT64",
    torch.bool: "AOTC_ABI_DTYPE_BOOL",
}


def debug_handles(schedule: Schedule) -> list[str]:
    """``<kernel>:<N>`` for each kernel call of |schedule|, in order (N counts
    the calls of one kernel; every kernel is called once today)."""
    seen: dict[str, int] = {}
    handles = []
    for kernel in schedule.kernels:
        n = seen.get(kernel.name, 0)
        seen[kernel.name] = n + 1
        handles.append(f"{kernel.name}:{n}")
    return handles


def generate_code(
    schedule: Schedule, isa: str, error_locations: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The codegen stage: every kernel's C++ (loop kernels and extern calls),
    then the wrapper around them. Returns the files of generate_sources.
    |error_locations| maps debug handles to the model line a failing kernel's
    error names ("model.py:12: <code>", aot/provenance.py)."""
    from ..cpp.extern_calls import emit_extern
    from ..cpp.kernel import generate_epilogue, generate_loop_kernel, graph_buffer_dtypes
    from .buffer_table import assign_buffer_ids
    from .sizes import make_size_expr

    buffer_ids = assign_buffer_ids(schedule)
    size_expr = make_size_expr([s.symbol for s in schedule.graph.symbols])
    handles = debug_handles(schedule)
    dtypes = graph_buffer_dtypes(schedule.graph)
    kernel_sources = []
    for kernel, handle in zip(schedule.kernels, handles, strict=True):
        if isinstance(kernel, LoopKernel):
            kernel_sources.append(
                generate_loop_kernel(kernel, buffer_ids, size_expr, handle, buffer_dtypes=dtypes)
            )
        else:
            epilogue = None
            if kernel.epilogue is not None:
                epilogue = generate_epilogue(
                    kernel.epilogue, buffer_ids, size_expr, handle, buffer_dtypes=dtypes
                )
            kernel_sources.append(
                emit_extern(kernel.name, kernel.node, buffer_ids, size_expr, handle, epilogue)
            )
    return generate_sources(
        schedule, kernel_sources, handles, isa=isa, error_locations=error_locations
    )


def generate_sources(
    schedule: Schedule,
    kernel_sources: Sequence[str],
    handles: Sequence[str],
    *,
    isa: str,
    headers: Sequence[str] = KERNEL_HEADERS,
    error_locations: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The library's sources: {"model.cc": ..., "kernels_0.cc": ...}.
    kernel_sources[i] and handles[i] belong to schedule.kernels[i]; every
    kernel file includes |headers| (the support headers, aotc_cpu*.h)."""
    _check_lengths(schedule, kernel_sources, handles)
    names = [k.name for k in schedule.kernels]
    kernel_files: dict[str, str] = {}
    for part, group in enumerate(_split(kernel_sources)):
        trampolines = [
            f"int32_t run_{n}(const aotc_rt::KernelContext& ctx) {{ return {n}(ctx); }}"
            for n in (names[i] for i in group)
        ]
        kernel_files[f"kernels_{part}.cc"] = _join(
            f"// Generated by aotc {__version__}: kernels of model {schedule.graph.name!r}.",
            *[f'#include "{h}"' for h in headers],
            "",
            *[kernel_sources[i].rstrip() + "\n" for i in group],
            "namespace aotc_model {",
            *trampolines,
            "}  // namespace aotc_model",
        )
    declarations = [
        "namespace aotc_model {",
        *[f"int32_t run_{n}(const aotc_rt::KernelContext& ctx);" for n in names],
        "}  // namespace aotc_model",
    ]
    calls = [f"aotc_model::run_{n}" for n in names]
    model_cc = _model_cc(schedule, handles, isa, declarations, calls, error_locations or {})
    return {"model.cc": model_cc, **kernel_files}


def generate_wrapper(
    schedule: Schedule,
    kernel_sources: Sequence[str],
    handles: Sequence[str],
    *,
    isa: str = "x86-64-v3",
    headers: Sequence[str] = KERNEL_HEADERS,
    error_locations: Mapping[str, str] | None = None,
) -> str:
    """The whole library as one translation unit: model.cc with the kernel
    sources inline (the same ABI functions as generate_sources)."""
    _check_lengths(schedule, kernel_sources, handles)
    prelude = [f'#include "{h}"' for h in headers] + [""]
    prelude += [s.rstrip() + "\n" for s in kernel_sources]
    calls = [k.name for k in schedule.kernels]
    return _model_cc(schedule, handles, isa, prelude, calls, error_locations or {})


def _check_lengths(schedule: Schedule, sources: Sequence[str], handles: Sequence[str]) -> None:
    if not len(sources) == len(handles) == len(schedule.kernels):
        raise ValueError(
            f"{len(schedule.kernels)} kernels but {len(sources)} sources and {len(handles)} "
            "debug handles"
        )


def _split(sources: Sequence[str]) -> list[list[int]]:
    """Consecutive groups of kernel indices, balanced by source size."""
    if not sources:
        return []
    sizes = [len(s) for s in sources]
    total = sum(sizes)
    count = max(1, min(len(sizes), MAX_KERNEL_FILES, math.ceil(total / KERNEL_FILE_CHARS)))
    groups: list[list[int]] = [[]]
    filled = 0
    for i, size in enumerate(sizes):
        # Start the next file once this one holds its share (by midpoints).
        if groups[-1] and len(groups) < count and filled + size / 2 > total * len(groups) / count:
            groups.append([])
        groups[-1].append(i)
        filled += size
    return groups


def _join(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# model.cc                                                                     #
# --------------------------------------------------------------------------- #


@dataclass
class DeviceParts:
    """What differs between a CPU and a CUDA model library around the shared
    description, plan and checks: the target, the kernel specs (CUDA: the
    cubins create() loads), the instance's extra members, code run at the end
    of create() and in destroy(), the run's kernel calls and how a mutated
    value is copied back."""

    device_type: str = "AOTC_ABI_DEVICE_CPU"
    target: str = "cpu:x86-64-v3"
    min_driver: int = 0
    includes: tuple[str, ...] = ("aotc_cpu.h",)
    kernel_specs: list[tuple[str, str, str]] = field(default_factory=list)  # name, entry, handle
    instance_members: list[str] = field(default_factory=list)
    create_code: list[str] = field(default_factory=list)
    destroy_code: list[str] = field(default_factory=list)
    run_code: list[str] = field(default_factory=list)  # after the buffer table
    extra_workspace: str = ""  # C++ bytes added after the schedule's workspace
    copy: str = "std::memcpy({dst}, {src}, {nbytes})"


def _cpu_parts(
    handles: Sequence[str], isa: str, calls: list[str], error_locations: Mapping[str, str]
) -> DeviceParts:
    run = [
        "    const aotc_rt::KernelContext ctx{instance->host, args->exec, buf, sym, status};",
        "    (void)ctx;",
        "    int32_t rc = AOTC_ABI_OK;",
        "    (void)rc;",
    ]
    for handle, call in zip(handles, calls, strict=True):
        run += [
            f"    // {handle}",
            f"    rc = {call}(ctx);",
            f"    if (rc != AOTC_ABI_OK) return kernel_failed(status, rc, {_c_string(handle)}, "
            f"{_c_string(where) if (where := error_locations.get(handle)) else 'nullptr'});",
        ]
    return DeviceParts(target=f"cpu:{isa}", run_code=run)


def _model_cc(
    schedule: Schedule,
    handles: Sequence[str],
    isa: str,
    prelude: list[str],
    calls: list[str],
    error_locations: Mapping[str, str],
) -> str:
    return model_cc(schedule, prelude, _cpu_parts(handles, isa, calls, error_locations))


def model_cc(schedule: Schedule, prelude: list[str], device: DeviceParts) -> str:
    """model.cc of |schedule| for |device|, with |prelude| (kernel sources or
    declarations) before the description."""
    graph = schedule.graph
    check_placements(schedule)
    local = SizePrinter({s.symbol: f"sym[{k}]" for k, s in enumerate(graph.symbols)}, strict=True)
    slots = buffer_slots(schedule)
    ids = {s.name: s.id for s in slots}
    outputs = [
        f"    out_output_sizes[{i}][{d}] = {local(size)};"
        for i, buf in enumerate(graph.outputs)
        for d, size in enumerate(buf.layout.sizes)
    ]
    workspace = local(schedule.workspace_bytes)
    if device.extra_workspace:
        # The schedule's workspace, rounded up to 256 bytes, then the extra.
        workspace = f"((({workspace}) + 255) / 256 * 256 + {device.extra_workspace})"
    body = _FUNCTIONS.substitute(
        input_checks=_join(*_input_checks(graph, local)).rstrip("\n"),
        run_symbols=_join(
            *[
                f"  sym[{k}] = in[{s.input_index}].sizes[{s.dim}];"
                for k, s in enumerate(graph.symbols)
            ]
        ).rstrip("\n"),
        output_sizes=_join(*outputs).rstrip("\n"),
        workspace_bytes=workspace,
        num_buffers=max(len(slots), 1),
        buffer_table=_join(
            *[f"    buf[{s.id}] = {_slot_pointer(s, local)};  // {s.name}" for s in slots]
        ).rstrip("\n"),
        kernel_calls=_join(
            *device.run_code, *_write_backs(schedule, ids, local, device.copy)
        ).rstrip("\n"),
        instance_members=_join(*device.instance_members).rstrip("\n"),
        create_code=_join(*device.create_code).rstrip("\n"),
        destroy_code=_join(*device.destroy_code).rstrip("\n"),
    )
    return _join(
        f"// Generated by aotc {__version__}: the model library of {graph.name!r} for "
        f"{device.target}.",
        "// Implements the model ABI (docs/ABI.md); see aot/codegen/wrapper/cpp_wrapper.py.",
        "#include <cstdarg>",
        "#include <cstdint>",
        "#include <cstdio>",
        "#include <cstring>",
        "#include <new>",
        "",
        '#include "aotc/model_abi.h"',
        *[f'#include "{h}"' for h in device.includes],
        "",
        *prelude,
        "",
        *_description(graph, device),
        "",
        body,
    )


def _c_string(text: str, printf: bool = False) -> str:
    """A C string literal of |text| (with % doubled when it is a printf format)."""
    if printf:
        text = text.replace("%", "%%")
    out = []
    for byte in text.encode("utf-8"):
        c = chr(byte)
        if c in '"\\?':
            out.append("\\" + c)
        elif 0x20 <= byte < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _format(text: str, conversions: str) -> str:
    """A printf format literal: |text| escaped, then |conversions| verbatim."""
    return _c_string(text, printf=True)[:-1] + conversions + '"'


def _dtype(dtype: torch.dtype) -> str:
    if dtype not in ABI_DTYPES:
        raise ValueError(f"dtype {dtype} has no model ABI code")
    return ABI_DTYPES[dtype]


def _bounds(expr: sympy.Expr, graph: LoweredGraph) -> tuple[int, int]:
    """[min, max] of a size over its symbols' ranges (sizes grow with their
    symbols); max is INT64_MAX when one of its symbols is unbounded."""
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        return int(expr), int(expr)
    infos = [s for s in graph.symbols if s.symbol in expr.free_symbols]
    low = int(expr.subs({s.symbol: s.low for s in infos}))
    if any(s.high >= INT64_MAX for s in infos):
        return max(low, 0), INT64_MAX
    high = int(expr.subs({s.symbol: s.high for s in infos}))
    return max(low, 0), min(max(high, low), INT64_MAX)


def _description(graph: LoweredGraph, device: DeviceParts) -> list[str]:
    out = ["namespace {", ""]

    def io_table(kind: str, buffers: list[Buffer], names: list[str], mutated: set[int]) -> str:
        entries = []
        for i, (buf, name) in enumerate(zip(buffers, names, strict=True)):
            dims = []
            for size in buf.layout.sizes:
                low, high = _bounds(size, graph)
                static = int(size) if is_static(size) else -1
                dims.append(f"{{{_c_string(size_text(size))}, {static}, {low}, {high}}}")
            table = "nullptr"
            if dims:
                table = f"k{kind}{i}Dims"
                out.append(f"const aotc_abi_dim_spec_t {table}[] = {{{', '.join(dims)}}};")
            flags = "AOTC_ABI_IO_MUTATED" if i in mutated else "0"
            dtype = _dtype(buf.dtype)
            entries.append(f"{{{_c_string(name)}, {dtype}, {len(dims)}, {table}, {flags}}}")
        if not entries:
            return "nullptr"
        out.extend([f"const aotc_abi_io_spec_t k{kind}s[] = {{", *[f"    {e}," for e in entries]])
        out.append("};")
        return f"k{kind}s"

    inputs = io_table(
        "Input", graph.inputs, graph.input_names, {i for i, _ in graph.input_mutations}
    )
    outputs = io_table("Output", graph.outputs, graph.output_names, set())
    constants = "nullptr"
    if graph.constants:
        entries = []
        for i, c in enumerate(graph.constants):
            sizes = [int(s) for s in c.buffer.layout.sizes]
            table = "nullptr"
            if sizes:
                table = f"kConstant{i}Sizes"
                out.append(f"const int64_t {table}[] = {{{', '.join(map(str, sizes))}}};")
            nbytes = math.prod(sizes) * torch.empty((), dtype=c.buffer.dtype).element_size()
            flags = "AOTC_ABI_CONSTANT_STATE" if c.buffer.kind is BufferKind.STATE else "0"
            name, dtype = _c_string(c.name), _dtype(c.buffer.dtype)
            entries.append(
                f"{{{name}, {name}, {dtype}, {len(sizes)}, {table}, {nbytes}ULL, {flags}}}"
            )
        out.extend(
            ["const aotc_abi_constant_spec_t kConstants[] = {", *[f"    {e}," for e in entries]]
        )
        out.append("};")
        constants = "kConstants"
    kernels = "nullptr"
    if device.kernel_specs:
        out.append("const aotc_abi_kernel_spec_t kKernels[] = {")
        out += [
            f"    {{{_c_string(n)}, {_c_string(e)}, {_c_string(h)}}},"
            for n, e, h in device.kernel_specs
        ]
        out.append("};")
        kernels = "kKernels"
    out.append(
        _DESCRIPTION.substitute(
            name=_c_string(graph.name),
            device_type=device.device_type,
            target=_c_string(device.target),
            min_driver=device.min_driver,
            num_kernels=len(device.kernel_specs),
            kernels=kernels,
            flags="AOTC_ABI_MODEL_MUTATES_STATE" if graph.state_mutations else "0",
            num_inputs=len(graph.inputs),
            inputs=inputs,
            num_outputs=len(graph.outputs),
            outputs=outputs,
            num_constants=len(graph.constants),
            constants=constants,
            num_symbols=len(graph.symbols),
        )
    )
    return out


def plan_relations(graph: LoweredGraph) -> list[tuple[int, int, sympy.Expr]]:
    """What plan() checks after binding the symbols: every dynamic input dim
    that does not bind a symbol, and the relations export recorded."""
    binding = {(s.input_index, s.dim): s.symbol for s in graph.symbols}
    candidates = [
        (i, d, sympy.sympify(size))
        for i, buf in enumerate(graph.inputs)
        for d, size in enumerate(buf.layout.sizes)
        if not is_static(size)
    ]
    candidates += [(i, d, sympy.sympify(e)) for i, d, e in graph.dim_relations]
    relations: list[tuple[int, int, sympy.Expr]] = []
    for i, d, expr in candidates:
        if binding.get((i, d)) != expr and (i, d, expr) not in relations:
            relations.append((i, d, expr))
    return relations


def _input_checks(graph: LoweredGraph, local: SizePrinter) -> list[str]:
    """bind_symbols(): static dims, then symbol ranges, then relations (the
    order and messages of docs/ABI.md section 8)."""
    names = graph.input_names
    out = []
    for i, buf in enumerate(graph.inputs):
        for d, size in enumerate(buf.layout.sizes):
            if is_static(size):
                message = _format(
                    f'input {i} "{names[i]}" dim {d}: expected {int(size)}, got ', "%lld"
                )
                out += [
                    f"  if (in[{i}][{d}] != {int(size)})",
                    f"    return fail(status, AOTC_ABI_INVALID_ARGUMENT, {message},",
                    f"                static_cast<long long>(in[{i}][{d}]));",
                ]
    for k, s in enumerate(graph.symbols):
        i, d = s.input_index, s.dim
        unbounded = s.high >= INT64_MAX
        range_text = f" is outside [{s.low}, {'inf' if unbounded else s.high}]"
        prefix = f'input {i} "{names[i]}" dim {d} ({s.symbol}): '
        message = _format(prefix, "%lld" + _c_string(range_text, printf=True)[1:-1])
        condition = f"sym[{k}] < {s.low}LL" + ("" if unbounded else f" || sym[{k}] > {s.high}LL")
        out += [
            f"  sym[{k}] = in[{i}][{d}];",
            f"  if ({condition})",
            f"    return fail(status, AOTC_ABI_INVALID_ARGUMENT, {message},",
            f"                static_cast<long long>(sym[{k}]));",
        ]
    for i, d, expr in plan_relations(graph):
        text = f'input {i} "{names[i]}" dim {d}: expected {size_text(expr)} = '
        out += [
            "  {",
            f"    const int64_t want = {local(expr)};",
            f"    if (in[{i}][{d}] != want)",
            "      return fail(status, AOTC_ABI_INVALID_ARGUMENT,",
            f"                  {_format(text, '%lld, got %lld')},",
            f"                  static_cast<long long>(want),"
            f" static_cast<long long>(in[{i}][{d}]));",
            "  }",
        ]
    return out


def _slot_pointer(slot: BufferSlot, local: SizePrinter) -> str:
    p = slot.placement
    if p.storage is Storage.INPUT:
        return f"args->inputs[{p.index}].data"
    if p.storage is Storage.CONSTANT:
        return f"instance->constants[{p.index}]"
    if p.storage is Storage.OUTPUT:
        return f"args->outputs[{p.index}].data"
    return f"workspace + {local(p.offset)}"


def _write_backs(
    schedule: Schedule, ids: dict[str, int], local: SizePrinter, copy: str
) -> list[str]:
    """Copies the new values of mutated inputs and state into their memory
    (those the scheduler could not place there, [Note: in-place mutations])."""
    graph = schedule.graph
    constant_index = {c.name: i for i, c in enumerate(graph.constants)}
    targets = [
        (f"args->inputs[{i}].data", f"input {i}", b, Placement(Storage.INPUT, i))
        for i, b in graph.input_mutations
    ]
    for name, b in graph.state_mutations:
        if name not in constant_index:
            raise ValueError(f"state mutation of {name!r}, which is not a constant")
        home = Placement(Storage.CONSTANT, constant_index[name])
        targets.append((f"instance->constants[{constant_index[name]}]", f"state {name}", b, home))
    out = []
    for dest, what, buffer, home in targets:
        if schedule.placements.get(buffer.name) == home:
            out.append(f"    // {what} is mutated: its new value {buffer.name} is written in place")
            continue
        if buffer.name not in ids:
            raise ValueError(f"the new value of {what} ({buffer.name}) has no memory")
        src = f"buf[{ids[buffer.name]}]"
        out += [
            f"    // {what} is mutated: its new value is {buffer.name}",
            f"    if ({src} != {dest}) "
            + copy.format(dst=dest, src=src, nbytes=local(buffer.nbytes()))
            + ";",
        ]
    return out


_DESCRIPTION = Template(
    """
const aotc_model_description_t kDescription = {
    static_cast<uint32_t>(sizeof(aotc_model_description_t)),
    AOTC_MODEL_ABI_MAJOR,
    AOTC_MODEL_ABI_MINOR,
    static_cast<uint32_t>(sizeof(aotc_abi_io_spec_t)),
    static_cast<uint32_t>(sizeof(aotc_abi_dim_spec_t)),
    static_cast<uint32_t>(sizeof(aotc_abi_constant_spec_t)),
    static_cast<uint32_t>(sizeof(aotc_abi_kernel_spec_t)),
    static_cast<uint32_t>(sizeof(aotc_abi_tensor_t)),
    static_cast<uint32_t>(sizeof(aotc_host_t)),
    static_cast<uint32_t>(sizeof(aotc_abi_run_args_t)),
    /*name=*/$name,
    $device_type,
    /*target=*/$target,
    /*min_driver_version=*/$min_driver,
    /*flags=*/$flags,
    /*num_inputs=*/$num_inputs,
    $inputs,
    /*num_outputs=*/$num_outputs,
    $outputs,
    /*num_constants=*/$num_constants,
    $constants,
    /*num_kernels=*/$num_kernels,
    $kernels,
};

constexpr uint32_t kNumInputs = $num_inputs;
constexpr uint32_t kNumOutputs = $num_outputs;
constexpr uint32_t kNumConstants = $num_constants;
constexpr int kNumSymbols = $num_symbols;

}  // namespace"""
)

_FUNCTIONS = Template(
    """namespace {

__attribute__((format(printf, 3, 4))) int32_t fail(aotc_abi_status_t* status, int32_t code,
                                                   const char* format, ...) {
  if (status != nullptr) {
    va_list args;
    va_start(args, format);
    status->code = code;
    std::vsnprintf(status->message, sizeof(status->message), format, args);
    va_end(args);
  }
  return code;
}

// Reads the size symbols from the input sizes and checks every input dim.
int32_t bind_symbols(const int64_t* const* in, int64_t* sym, aotc_abi_status_t* status) {
  (void)in;
  (void)sym;
  (void)status;
$input_checks
  return AOTC_ABI_OK;
}

// The size symbols of a run, read from its input tensors (plan() checked them).
void run_symbols(const aotc_abi_tensor_t* in, int64_t* sym) {
  (void)in;
  (void)sym;
$run_symbols
}

// A kernel failed: its message becomes "<handle> (<where>): <what>", naming
// the kernel and its model line (docs/PROVENANCE.md). |where| may be null
// (exported without provenance); a kernel that named itself already
// ("<handle>: index ...") is not named twice.
int32_t kernel_failed(aotc_abi_status_t* status, int32_t code, const char* handle,
                      const char* where) {
  if (status == nullptr) return code;
  char what[AOTC_ABI_MESSAGE_CAPACITY];
  if (status->code == AOTC_ABI_OK) {
    std::snprintf(what, sizeof(what), "failed with code %d", static_cast<int>(code));
  } else {
    const char* message = status->message;
    const size_t n = std::strlen(handle);
    if (std::strncmp(message, handle, n) == 0 && message[n] == ':' && message[n + 1] == ' ')
      message += n + 2;
    std::snprintf(what, sizeof(what), "%s", message);
  }
  if (where != nullptr) return fail(status, code, "%s (%s): %s", handle, where, what);
  return fail(status, code, "%s: %s", handle, what);
}

}  // namespace

struct aotc_model_instance {
  const aotc_host_t* host;
  void* constants[kNumConstants > 0 ? kNumConstants : 1];
$instance_members
};

#define AOTC_EXPORT extern "C" __attribute__((visibility("default")))

AOTC_EXPORT const aotc_model_description_t* aotc_model_describe(void) { return &kDescription; }

AOTC_EXPORT int32_t aotc_model_create(const aotc_host_t* host,
                                      const aotc_abi_constant_binding_t* constants,
                                      uint32_t num_constants, aotc_model_instance** out_instance,
                                      aotc_abi_status_t* status) {
  try {
    if (host == nullptr || out_instance == nullptr || (num_constants > 0 && constants == nullptr))
      return fail(status, AOTC_ABI_INTERNAL, "runtime broke the ABI: create got a NULL argument");
    if (host->struct_size < sizeof(aotc_host_t) || host->abi_major != AOTC_MODEL_ABI_MAJOR ||
        host->parallel_for == nullptr)
      return fail(status, AOTC_ABI_UNSUPPORTED,
                  "host table of %u bytes (ABI %u.%u) is older than this library needs (%u bytes)",
                  host->struct_size, host->abi_major, host->abi_minor,
                  static_cast<unsigned>(sizeof(aotc_host_t)));
    if (num_constants != kNumConstants)
      return fail(status, AOTC_ABI_INTERNAL,
                  "runtime broke the ABI: create got %u constants, expected %u", num_constants,
                  kNumConstants);
    for (uint32_t i = 0; i < num_constants; ++i) {
      const aotc_abi_constant_spec_t& spec = kDescription.constants[i];
      if (constants[i].nbytes != spec.nbytes || (constants[i].data == nullptr && spec.nbytes != 0))
        return fail(status, AOTC_ABI_INTERNAL,
                    "runtime broke the ABI: constant %u \\"%s\\" bound to %llu bytes, "
                    "expected %llu",
                    i, spec.name, static_cast<unsigned long long>(constants[i].nbytes),
                    static_cast<unsigned long long>(spec.nbytes));
    }
    auto* instance = new (std::nothrow) aotc_model_instance{host, {}};
    if (instance == nullptr)
      return fail(status, AOTC_ABI_RESOURCE_EXHAUSTED, "out of memory creating the model");
    for (uint32_t i = 0; i < num_constants; ++i) instance->constants[i] = constants[i].data;
$create_code
    *out_instance = instance;
    return AOTC_ABI_OK;
  } catch (...) {
    return fail(status, AOTC_ABI_INTERNAL, "unexpected exception in aotc_model_create");
  }
}

AOTC_EXPORT int32_t aotc_model_plan(const aotc_model_instance* instance,
                                    const int64_t* const* input_sizes,
                                    int64_t* const* out_output_sizes,
                                    uint64_t* out_workspace_bytes, aotc_abi_status_t* status) {
  try {
    if (instance == nullptr || (kNumInputs > 0 && input_sizes == nullptr) ||
        (kNumOutputs > 0 && out_output_sizes == nullptr) || out_workspace_bytes == nullptr)
      return fail(status, AOTC_ABI_INTERNAL, "runtime broke the ABI: plan got a NULL argument");
    int64_t sym[kNumSymbols > 0 ? kNumSymbols : 1] = {};
    int32_t rc = bind_symbols(input_sizes, sym, status);
    if (rc != AOTC_ABI_OK) return rc;
$output_sizes
    *out_workspace_bytes = static_cast<uint64_t>($workspace_bytes);
    return AOTC_ABI_OK;
  } catch (...) {
    return fail(status, AOTC_ABI_INTERNAL, "unexpected exception in aotc_model_plan");
  }
}

AOTC_EXPORT int32_t aotc_model_run(const aotc_model_instance* instance,
                                   const aotc_abi_run_args_t* args, aotc_abi_status_t* status) {
  try {
    if (instance == nullptr || args == nullptr || args->struct_size < sizeof(aotc_abi_run_args_t))
      return fail(status, AOTC_ABI_INTERNAL, "runtime broke the ABI: bad run arguments");
    if (args->num_inputs != kNumInputs || args->num_outputs != kNumOutputs)
      return fail(status, AOTC_ABI_INTERNAL,
                  "runtime broke the ABI: run got %u inputs and %u outputs, expected %u and %u",
                  args->num_inputs, args->num_outputs, kNumInputs, kNumOutputs);
    int64_t sym[kNumSymbols > 0 ? kNumSymbols : 1] = {};
    run_symbols(args->inputs, sym);
    const uint64_t workspace_bytes = static_cast<uint64_t>($workspace_bytes);
    if (args->workspace_bytes < workspace_bytes ||
        (workspace_bytes > 0 && args->workspace == nullptr))
      return fail(status, AOTC_ABI_INTERNAL,
                  "runtime broke the ABI: workspace of %llu bytes, plan asked for %llu",
                  static_cast<unsigned long long>(args->workspace_bytes),
                  static_cast<unsigned long long>(workspace_bytes));
    char* workspace = static_cast<char*>(args->workspace);
    (void)workspace;
    void* buf[$num_buffers] = {};
$buffer_table
$kernel_calls
    return AOTC_ABI_OK;
  } catch (...) {
    return fail(status, AOTC_ABI_INTERNAL, "unexpected exception in aotc_model_run");
  }
}

AOTC_EXPORT void aotc_model_destroy(aotc_model_instance* instance) {
  if (instance == nullptr) return;
$destroy_code
  delete instance;
}"""
)
