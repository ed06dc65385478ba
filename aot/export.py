"""The export driver: model.py (or a module in memory) to a .pt2 package.

    frontend ─► lower ─► schedule ─► codegen ─► build ─► package

Each stage is one call of the stage's entry function with the previous
stage's value; nothing here reaches into a stage. export_model() starts from a
model file (`aotc export`), compile_module() from an nn.Module (the test
harness); both end in compile_exported().
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from . import structure
from .build import BuildError, Progress, source_tree
from .build.cache import CompileCache
from .build.cached_build import build_cached
from .frontend import ExportedModel, capture_module, run_frontend
from .ir.graph import LoweredGraph
from .ir.nodes import BufferKind
from .options import ExportOptions


def export_model(
    path: Path,
    output: Path,
    options: ExportOptions,
    quiet: bool = False,
    verbose: bool = False,
    cache: CompileCache | None | str = "env",
    stats_json: Path | None = None,
) -> Path:
    """Exports the model that |path| (model.py) defines into the package |output|.
    Stage times and cache counters go to a terminal (always with |verbose|,
    never with |quiet|) and, as JSON, to |stats_json|. |cache| is a
    CompileCache, None for none, or "env" for $AOTC_CACHE_DIR's."""
    progress = Progress(quiet=quiet, verbose=verbose)
    # Frontend: import model.py, torch.export on CPU, aotc's decompositions.
    with progress.stage("frontend"):
        exported = run_frontend(Path(path), options)
    result = compile_exported(exported, Path(output), progress, cache)
    if stats_json is not None:
        Path(stats_json).write_text(json.dumps(progress.summary(), indent=1) + "\n")
    return result


def compile_module(
    module: torch.nn.Module,
    example_inputs: tuple[Any, ...],
    output: Path,
    options: ExportOptions,
    name: str = "model",
    dynamic_shapes: Any = None,
    cache: CompileCache | None | str = "env",
) -> Path:
    """Compiles an in-memory |module| into the package |output|."""
    progress = Progress(quiet=True)
    with progress.stage("frontend"):
        exported = capture_module(
            module, example_inputs, options, name=name, dynamic_shapes=dynamic_shapes
        )
    return compile_exported(exported, Path(output), progress, cache)


def compile_exported(
    exported: ExportedModel,
    output: Path,
    progress: Progress,
    cache: CompileCache | None | str = "env",
) -> Path:
    """The stages after the frontend: lower, schedule, codegen, build, package."""
    from .codegen.wrapper.cpp_wrapper import debug_handles, generate_code
    from .provenance import error_locations, provenance_files, trace_kernels
    from .scheduler import schedule
    from .scheduler.costs import cost_records

    options = exported.options
    progress.inner_times["torch_export"] = exported.export_seconds  # within "frontend"
    if cache == "env":
        cache = CompileCache.from_env()
    # Lowering: the decomposed aten graph to aotc IR (buffers, loops, externs).
    with progress.stage("lower"):
        graph = lower(exported)
    # Scheduling: fusion into kernels, bytes moved, the workspace plan.
    with progress.stage("schedule"):
        plan = schedule(graph)
    # Provenance: each kernel call's graph nodes and model.py lines.
    traces = None
    if options.provenance:
        with progress.stage("provenance"):
            traces = trace_kernels(exported, plan, debug_handles(plan), device=options.device)
    locations = error_locations(traces) if traces else None
    kernels: list[dict[str, Any]] = []
    code_files: dict[str, str] = {}
    min_driver = 0
    if options.device == "cuda":
        sources, kernels, code_files, min_driver = _cuda_codegen(
            plan, options, progress, cache, locations
        )
    else:
        # Codegen: C++ loop kernels, extern calls and the wrapper (model.cc).
        with progress.stage("codegen"):
            sources = generate_code(plan, options.isa, locations)
    # A cuda library is host code only: baseline x86-64 is plenty.
    isa = options.isa if options.device == "cpu" else "x86-64"
    tree = source_tree(sources, isa, device=options.device)
    extra = {}
    if traces is not None:
        extra = provenance_files(exported, traces, sources, code_files)
    work, keep = Path(tempfile.mkdtemp(prefix="aotc-build-")), False
    try:
        # Build: CMake + Ninja -> model.so, or the compile cache's copy.
        with progress.stage("build"):
            library, counters = build_cached(tree, work, options, cache)
        progress.counters.update(counters.as_dict())
    except BuildError as e:
        keep = True  # for the user to look at
        e.args = (f"{e}\n(the sources and the build are kept in {work})",)
        raise
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    # Package: library, weights, samples and sources into one .pt2.
    with progress.stage("package"):
        inputs, outputs, metadata = eager_samples(exported)
        write_package(
            output,
            graph,
            library,
            tree,
            options,
            sample_inputs=inputs,
            sample_outputs=outputs,
            metadata=metadata,
            files=extra,
            costs=cost_records(plan, debug_handles(plan)),
            kernels=kernels,
            min_driver=min_driver,
        )
    progress.done()
    return output


def lower(exported: ExportedModel) -> LoweredGraph:
    """The lowering stage, with the failing node's description and model.py
    line added to an unsupported-op or lowering error."""
    from .lowering import UnsupportedOpError, build_registry
    from .lowering.graph_lowering import LoweringError, lower_graph

    try:
        return lower_graph(
            exported.program, exported.name, build_registry(), exported.options.device
        )
    except (UnsupportedOpError, LoweringError) as e:
        node = _failing_node(exported.program, e)
        if node is not None:
            from .frontend import describe_node, node_location

            where = node_location(node, exported.source_path)
            e.args = (f"{e}\n  {describe_node(node)}\n  at {where}",)
        raise


def _failing_node(program: torch.export.ExportedProgram, error: Exception) -> Any:
    name, target = getattr(error, "node", None), getattr(error, "target", None)
    for node in program.graph.nodes:
        if (name is not None and node.name == name) or (name is None and node.target == target):
            return node
    return None


# --------------------------------------------------------------------------- #
# Packaging                                                                    #
# --------------------------------------------------------------------------- #


def eager_samples(
    exported: ExportedModel,
) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, Any]]:
    """The example inputs, the eager module's outputs for them (flattened), and
    metadata recording both pytree structures (torch.utils._pytree
    treespec_dumps, for the harness to rebuild the model's output structure)."""
    flat_inputs, in_spec = pytree.tree_flatten(exported.example_inputs)
    # The eager run must not change state: a forward that mutates a buffer
    # (BUFFER_MUTATION, `self.count += 1`) or an input would otherwise leave the
    # post-run values in the lowered constants (they share storage with the
    # module's buffers, and are written to the package after this), in the
    # stored sample inputs, and in the caller's module. Run on cloned inputs and
    # put every buffer back afterwards.
    saved = {name: b.clone() for name, b in exported.module.named_buffers()}
    run_inputs = pytree.tree_map_only(torch.Tensor, torch.clone, exported.example_inputs)
    try:
        with torch.no_grad():
            result = exported.module(*run_inputs)
    finally:
        with torch.no_grad():
            for name, b in exported.module.named_buffers():
                if name in saved:
                    b.copy_(saved[name])
    flat_outputs, out_spec = pytree.tree_flatten(result)
    metadata = {"in_spec": _dump_spec(in_spec), "out_spec": _dump_spec(out_spec)}
    # torch cannot serialise every output container (torch.return_types):
    # record aotc's own description too, for the harness to rebuild.
    metadata["inputs"] = structure.input_record(
        tuple(exported.example_inputs),
        structure.positional_names(exported.module, len(exported.example_inputs)),
    )
    out_structure = structure.describe(result)
    if out_structure is not None:
        metadata["out_structure"] = out_structure
    if exported.source_path is not None:
        metadata["source"] = Path(exported.source_path).name
    inputs = [t for t in flat_inputs if isinstance(t, torch.Tensor)]
    outputs = [t for t in flat_outputs if isinstance(t, torch.Tensor)]
    return inputs, outputs, metadata


def _dump_spec(spec: pytree.TreeSpec) -> str:
    try:
        return pytree.treespec_dumps(spec)
    except Exception:  # a container type without pytree serialisation
        return str(spec)


def write_package(
    output: Path,
    graph: LoweredGraph,
    library: bytes,
    tree: Mapping[str, bytes],
    options: ExportOptions,
    *,
    sample_inputs: Sequence[torch.Tensor] = (),
    sample_outputs: Sequence[torch.Tensor] = (),
    metadata: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    costs: Sequence[Mapping[str, Any]] = (),
    kernels: Sequence[Mapping[str, Any]] = (),
    min_driver: int = 0,
) -> Path:
    """Writes the package |output|: |library| (model.so) for |graph|, its
    constants, the samples (kept only when they match the graph's inputs and
    outputs), the source |tree| under src/ and the model folder's other
    |files| (provenance), each kernel's |costs| in the manifest and, for a
    cuda package, its |kernels| (cubins and PTX, with their records) and the
    CUDA driver they need (|min_driver|, as cuDriverGetVersion)."""
    import packager

    inputs = [_spec(n, b) for n, b in zip(graph.input_names, graph.inputs, strict=True)]
    outputs = [_spec(n, b) for n, b in zip(graph.output_names, graph.outputs, strict=True)]
    samples_ok = _samples_match(sample_inputs, inputs) and _samples_match(sample_outputs, outputs)
    meta = {"export_options": dataclasses.asdict(options), **(metadata or {})}
    if not samples_ok:
        meta["samples"] = "omitted: the eager values do not match the compiled signature"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with packager.PackageWriter(output, compress=options.compress) as writer:
        writer.add_model(
            name=graph.name,
            library=library,
            inputs=inputs,
            outputs=outputs,
            target=_target(options, min_driver),
            abi={"major": 1, "minor": 0},
            constants=[_constant(c) for c in graph.constants],
            samples_inputs=[_sample(t) for t in sample_inputs] if samples_ok else [],
            samples_outputs=[_sample(t) for t in sample_outputs] if samples_ok else [],
            files={**{f"src/{name}": data for name, data in tree.items()}, **(files or {})},
            producer={"torch": torch.__version__},
            metadata=meta,
            costs=costs,
            kernels=kernels,
        )
    return Path(output)


def _target(options: ExportOptions, min_driver: int) -> dict[str, Any]:
    if options.device == "cuda":
        return {"device": "cuda", "isa": None, "arch": options.arch, "min_driver": min_driver}
    return {"device": "cpu", "isa": options.isa, "arch": None, "min_driver": 0}


def _cuda_codegen(
    plan: Any,
    options: ExportOptions,
    progress: Progress,
    cache: CompileCache | None,
    locations: Mapping[str, str] | None,
) -> tuple[dict[str, str], list[dict[str, Any]], dict[str, str], int]:
    """The GPU package's codegen: Triton kernels, compiled offline for
    options.arch (through the compile cache), and the CUDA wrapper. Returns
    the sources (model.cc, then each Triton source under triton/), the
    package's kernel records, per debug handle the file of its first Triton
    kernel (provenance), and the CUDA driver the kernels need."""
    from .build.cached_build import key_salt
    from .build.triton_build import compile_kernels_cached, min_driver_version
    from .codegen.triton.generate import generate_triton
    from .codegen.wrapper.cpp_wrapper import debug_handles
    from .codegen.wrapper.cuda_wrapper import generate_cuda_model, kernel_entries

    handles = debug_handles(plan)
    with progress.stage("codegen"):
        launches = generate_triton(plan, handles)
    flat = [k for group in launches for k in group]
    with progress.stage("triton"):
        compiled, hit = compile_kernels_cached(
            flat, options.arch, key_salt(options), cache, options.build_jobs
        )
    progress.counters["triton_cache_hits" if hit else "triton_cache_misses"] = 1
    min_driver = min_driver_version(list(compiled.values()))
    with progress.stage("wrapper"):
        model = generate_cuda_model(
            plan, launches, compiled, handles, options.arch, min_driver, locations
        )
    sources = {"model.cc": model, **{f"triton/{k.name}.py": k.source for k in flat}}
    records = []
    for group, handle in zip(launches, handles, strict=True):
        for k in group:
            for (name, variant), c in compiled.items():
                if name != k.name:
                    continue
                cubin, ptx = kernel_entries(name, variant)
                meta = c.metadata()
                for entry, data in ((cubin, c.cubin), (ptx, c.ptx.encode())):
                    records.append(
                        {
                            "name": f"{name}.{variant}",
                            "entry": entry,
                            "debug_handle": handle,
                            "data": data,
                            "launch": {
                                key: meta[key]
                                for key in ("symbol", "num_warps", "num_ctas", "shared", "params")
                            },
                        }
                    )
    code_files = {}
    for group, handle in zip(launches, handles, strict=True):
        if group:
            code_files[handle] = f"src/triton/{group[0].name}.py"
    return sources, records, code_files, min_driver


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _spec(name: str, buffer: Any) -> dict[str, Any]:
    from .codegen.wrapper.sizes import is_static, size_text

    shape = [int(s) if is_static(s) else size_text(s) for s in buffer.layout.sizes]
    return {"name": name, "dtype": _dtype_name(buffer.dtype), "shape": shape}


def _numpy(t: torch.Tensor) -> Any:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view("uint16")
    return t.numpy()


def _constant(c: Any) -> Any:
    import packager

    value = c.value
    shape = [int(s) for s in c.buffer.layout.sizes]
    if list(value.shape) != shape or value.dtype != c.buffer.dtype:
        raise ValueError(
            f"constant {c.name!r}: value {_dtype_name(value.dtype)}{list(value.shape)} does not "
            f"match its buffer {_dtype_name(c.buffer.dtype)}{shape}"
        )
    state = c.buffer.kind is BufferKind.STATE
    return packager.Constant(c.name, _dtype_name(value.dtype), shape, _numpy(value), state=state)


def _sample(t: torch.Tensor) -> Any:
    import packager

    return packager.Sample(_dtype_name(t.dtype), list(t.shape), _numpy(t))


def _samples_match(tensors: Sequence[torch.Tensor], specs: list[dict[str, Any]]) -> bool:
    if len(tensors) != len(specs):
        return False
    for t, spec in zip(tensors, specs, strict=True):
        if _dtype_name(t.dtype) != spec["dtype"] or t.dim() != len(spec["shape"]):
            return False
        if any(isinstance(d, int) and d != n for d, n in zip(spec["shape"], t.shape, strict=True)):
            return False
    return True
