"""The CUDA wrapper: model.cc of a GPU package, host code that loads the
package's Triton cubins and launches them (docs/ABI.md section 15).

[Note: CUDA wrapper] The library has the CPU wrapper's description, plan and
input checks (cpp_wrapper.model_cc), with:
- create() loading every compiled kernel variant once, from the archive
  (host->get_entry), cubin first and PTX if the driver refuses the cubin,
  raising the dynamic shared memory limit where a kernel needs more than
  48 KB; destroy() unloads them;
- run() binding each launch's arguments ([Note: Triton launches]: buffer
  pointers plus view offsets, size expressions over the run's symbols, then
  Triton's hidden scratch parameters as null), choosing the aligned or the
  generic variant from the pointers' alignment ([Note: Triton variants]) and
  launching on the caller's stream. It never allocates, frees or
  synchronises, except to read back index-check slots ([Note: GPU index
  checks]) when the model has any: those live after the schedule's
  workspace, are zeroed at the start of the run and copied back after the
  last launch.
- mutated inputs and state copied back device to device on the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ...build.triton_build import VARIANTS, CompiledKernel, TritonBuildError
from ...scheduler.schedule import Schedule
from ..triton.context import INDEX_ERRORS
from ..triton.launch import TritonKernel
from .buffer_table import assign_buffer_ids
from .cpp_wrapper import DeviceParts, _c_string, model_cc
from .sizes import SizePrinter

ERROR_SLOT_BYTES = 32  # int64[4]: flag, value, size, check number


def kernel_entries(name: str, variant: str) -> tuple[str, str]:
    """The archive entries (under kernels/) of a kernel variant's cubin and PTX."""
    return f"{name}.{variant}.cubin", f"{name}.{variant}.ptx"


def generate_cuda_model(
    schedule: Schedule,
    launches: Sequence[Sequence[TritonKernel]],
    compiled: Mapping[tuple[str, str], CompiledKernel],
    handles: Sequence[str],
    arch: str,
    min_driver: int,
    error_locations: Mapping[str, str] | None = None,
) -> str:
    """model.cc for |schedule| whose kernels are |launches| (generate_triton)
    compiled as |compiled| (triton_build.compile_kernels) for |arch|."""
    graph = schedule.graph
    error_locations = error_locations or {}
    ids = assign_buffer_ids(schedule)
    local = SizePrinter({s.symbol: f"sym[{k}]" for k, s in enumerate(graph.symbols)}, strict=True)
    kernels = [k for group in launches for k in group]
    images, specs = [], []
    for kernel in kernels:
        for variant in VARIANTS:
            c = compiled[(kernel.name, variant)]
            if c.global_scratch_size or c.profile_scratch_size:
                raise TritonBuildError(
                    f"{kernel.name}: Triton asks for {c.global_scratch_size} bytes of global "
                    "scratch per program, which the CUDA wrapper does not provide yet"
                )
            cubin, ptx = kernel_entries(kernel.name, variant)
            images.append(
                f"    {{{_c_string('kernels/' + cubin)}, {_c_string('kernels/' + ptx)}, "
                f"{_c_string(c.symbol)}, {c.shared}u, {c.num_warps * 32}u}},"
            )
    for kernel, handle in _with_handles(launches, handles):
        for variant in VARIANTS:
            for entry in kernel_entries(kernel.name, variant):
                specs.append((f"{kernel.name}.{variant}", entry, handle))
    checking = [k.name for k in kernels if k.index_checks]
    slot_of = {name: i for i, name in enumerate(checking)}
    prelude = [
        "namespace {",
        "",
        "// Each kernel's variants: [2k] aligned, [2k + 1] generic ([Note: Triton variants]).",
        "const aotc_cuda::KernelImage kImages[] = {",
        *images,
        "};",
        f"constexpr uint32_t kNumImages = {len(images)};",
        "",
        "}  // namespace",
    ]
    run = [
        "    const aotc_host_t* host = instance->host;",
        "    void* stream = args->stream;",
        "    int32_t rc = AOTC_ABI_OK;",
        "    (void)rc;",
        "    (void)host;",
        "    (void)stream;",
    ]
    errors_offset = f"((({local(schedule.workspace_bytes)}) + 255) / 256 * 256)"
    if checking:
        run += [
            "    // Index-check slots, zeroed for this run ([Note: GPU index checks]).",
            f"    int64_t* errors = reinterpret_cast<int64_t*>(workspace + {errors_offset});",
            "    rc = host->memset_async(host->ctx, errors, 0, "
            f"{len(checking) * ERROR_SLOT_BYTES}, stream, status);",
            "    if (rc != AOTC_ABI_OK) return rc;",
        ]
    image = 0
    for kernel, handle in _with_handles(launches, handles):
        c = compiled[(kernel.name, "aligned")]
        where = error_locations.get(handle)
        run += _launch(kernel, c, image, handle, where, ids, local, slot_of.get(kernel.name))
        image += len(VARIANTS)
    if checking:
        run += _read_errors(slot_of, launches, handles, error_locations)
    device = DeviceParts(
        device_type="AOTC_ABI_DEVICE_CUDA",
        target=f"cuda:{arch}",
        min_driver=min_driver,
        includes=("aotc_cuda.h",),
        kernel_specs=specs,
        instance_members=[
            f"  void* modules[{max(len(images), 1)}];",
            f"  void* functions[{max(len(images), 1)}];",
        ],
        create_code=_create_code(),
        destroy_code=[
            "  for (uint32_t k = 0; k < kNumImages; ++k)",
            "    if (instance->modules[k] != nullptr)",
            "      instance->host->module_unload(instance->host->ctx, instance->modules[k]);",
        ],
        run_code=run,
        extra_workspace=str(len(checking) * ERROR_SLOT_BYTES) if checking else "",
        copy=(
            "{{ rc = host->memcpy_async(host->ctx, {dst}, {src}, {nbytes}, "
            "AOTC_ABI_MEMCPY_DEVICE_TO_DEVICE, stream, status); "
            "if (rc != AOTC_ABI_OK) return rc; }}"
        ),
    )
    return model_cc(schedule, prelude, device)


def _with_handles(
    launches: Sequence[Sequence[TritonKernel]], handles: Sequence[str]
) -> list[tuple[TritonKernel, str]]:
    return [(k, h) for group, h in zip(launches, handles, strict=True) for k in group]


def _create_code() -> list[str]:
    return [
        "    if (host->get_entry == nullptr || host->module_load == nullptr ||",
        "        host->module_unload == nullptr || host->module_get_function == nullptr ||",
        "        host->function_set_shared_memory == nullptr || host->launch == nullptr ||",
        "        host->memcpy_async == nullptr || host->memset_async == nullptr ||",
        "        host->stream_synchronize == nullptr) {",
        "      delete instance;",
        "      return fail(status, AOTC_ABI_UNSUPPORTED,",
        '                  "this is a CUDA model but the host has no CUDA device callbacks");',
        "    }",
        "    for (uint32_t k = 0; k < kNumImages; ++k) {",
        "      const int32_t rc = aotc_cuda::load_kernel(host, kImages[k], &instance->modules[k],",
        "                                                &instance->functions[k], status);",
        "      if (rc != AOTC_ABI_OK) {",
        "        for (uint32_t j = 0; j < k; ++j) host->module_unload(host->ctx, "
        "instance->modules[j]);",
        "        delete instance;",
        "        return rc;",
        "      }",
        "    }",
    ]


def _itemsize(dtype: torch.dtype | None) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _launch(
    kernel: TritonKernel,
    compiled: CompiledKernel,
    image: int,
    handle: str,
    where: str | None,
    ids: Mapping[str, int],
    local: SizePrinter,
    slot: int | None,
) -> list[str]:
    out = [f"    // {handle}", f"    {{  // {kernel.name}"]
    pointers, params = [], []
    for i, arg in enumerate(kernel.args):
        var = f"a{i}"
        if arg.kind == "pointer":
            if arg.buffer == INDEX_ERRORS:
                if slot is None:
                    raise ValueError(f"{kernel.name}: an index-errors arg but no index checks")
                out.append(f"      void* {var} = errors + {4 * slot};")
            else:
                if arg.buffer not in ids:
                    raise ValueError(f"{kernel.name}: buffer {arg.buffer} has no memory")
                base = f"buf[{ids[arg.buffer]}]"
                if arg.offset != 0:
                    offset = local(arg.offset * _itemsize(arg.dtype))
                    base = f"static_cast<void*>(static_cast<char*>({base}) + {offset})"
                out.append(f"      void* {var} = {base};  // {arg.name}: {arg.buffer}")
            pointers.append(var)
        elif arg.kind == "size":
            out.append(f"      int64_t {var} = {local(arg.value)};  // {arg.name}")
        else:
            out.append(f"      double {var} = {float(arg.value)!r};  // {arg.name}")
        params.append(f"&{var}")
    hidden = compiled.hidden_params(len(kernel.args))
    if hidden < 0:
        raise TritonBuildError(
            f"{kernel.name}: the compiled kernel takes {compiled.params} parameters, "
            f"fewer than its {len(kernel.args)} arguments"
        )
    for h in range(hidden):
        out.append(f"      void* hidden{h} = nullptr;  // Triton's scratch pointer")
        params.append(f"&hidden{h}")
    out.append(f"      void* params[] = {{{', '.join(params) or 'nullptr'}}};")
    gx, gy, gz = (local(g) for g in kernel.grid)
    aligned = " && ".join(f"aotc_cuda::aligned16({p})" for p in pointers) or "true"
    quoted = _c_string(handle)
    where_text = _c_string(where) if where else "nullptr"
    out += [
        f"      const int64_t gx = {gx}, gy = {gy}, gz = {gz};",
        "      if (!aotc_cuda::grid_fits(gx, gy, gz)) {",
        "        fail(status, AOTC_ABI_UNSUPPORTED, "
        '"launch grid %lld x %lld x %lld exceeds the GPU\'s limits",',
        "             static_cast<long long>(gx), static_cast<long long>(gy), "
        "static_cast<long long>(gz));",
        f"        return kernel_failed(status, AOTC_ABI_UNSUPPORTED, {quoted}, {where_text});",
        "      }",
        "      if (gx > 0 && gy > 0 && gz > 0) {",
        f"        const uint32_t k = ({aligned}) ? {image}u : {image + 1}u;",
        "        const uint32_t grid[3] = {static_cast<uint32_t>(gx), static_cast<uint32_t>(gy),",
        "                                  static_cast<uint32_t>(gz)};",
        "        const uint32_t block[3] = {kImages[k].threads, 1, 1};",
        "        rc = host->launch(host->ctx, instance->functions[k], grid, block,",
        f"                          kImages[k].shared_bytes, stream, params, {quoted}, status);",
        f"        if (rc != AOTC_ABI_OK) return kernel_failed(status, rc, {quoted}, {where_text});",
        "      }",
        "    }",
    ]
    return out


def _read_errors(
    slot_of: Mapping[str, int],
    launches: Sequence[Sequence[TritonKernel]],
    handles: Sequence[str],
    error_locations: Mapping[str, str],
) -> list[str]:
    n = len(slot_of)
    out = [
        "    // Read back the index checks: the only synchronisation of a run.",
        f"    int64_t seen[{4 * n}] = {{}};",
        f"    rc = host->memcpy_async(host->ctx, seen, errors, {n * ERROR_SLOT_BYTES}, "
        "AOTC_ABI_MEMCPY_DEVICE_TO_HOST, stream, status);",
        "    if (rc != AOTC_ABI_OK) return rc;",
        "    rc = host->stream_synchronize(host->ctx, stream, status);",
        "    if (rc != AOTC_ABI_OK) return rc;",
    ]
    for kernel, handle in _with_handles(launches, handles):
        if kernel.name not in slot_of:
            continue
        s = 4 * slot_of[kernel.name]
        whats = ", ".join(_c_string(w) for w in kernel.index_checks)
        where = error_locations.get(handle)
        out += [
            f"    if (seen[{s}] != 0) {{",
            f"      static const char* const what[] = {{{whats}}};",
            f"      const int64_t check = seen[{s + 3}];",
            "      fail(status, AOTC_ABI_OUT_OF_RANGE, "
            '"%s: index %lld out of range [0, %lld) for %s",',
            f"           {_c_string(handle)}, static_cast<long long>(seen[{s + 1}]),",
            f"           static_cast<long long>(seen[{s + 2}]),",
            f"           check >= 0 && check < {len(kernel.index_checks)} ? what[check] : "
            '"an index");',
            f"      return kernel_failed(status, AOTC_ABI_OUT_OF_RANGE, {_c_string(handle)}, "
            f"{_c_string(where) if where else 'nullptr'});",
            "    }",
        ]
    return out
