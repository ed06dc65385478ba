"""Runs aotc's Triton kernels on the CPU with Triton's interpreter
(TRITON_INTERPRET=1): the GPU backend's codegen tested without a GPU.

A Python mirror of the CUDA wrapper (aot/codegen/wrapper/cuda_wrapper.py):
the same memory plan (inputs, constants, outputs, one workspace), the same
argument binding ([Note: Triton launches]), the same index checks ([Note: GPU
index checks]) and write-backs. The C++ runtime path itself is tested on a GPU
(tests/test_gpu.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sympy
import torch

# Before triton's import: triton.language's own @jit helpers (tl.zeros,
# tl.cdiv, ...) are made interpretable only when it is set as they are defined.
os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton")


def _index_scalars_of_any_shape() -> None:
    """Triton 3.6's interpreter makes scalars 1-element arrays (program_id is
    shape (1,)) and indexes them with int(array), which NumPy >= 2.4 refuses
    for arrays that are not 0-d: a loop whose bounds derive from program_id
    (causal attention) would fail. Read the one element instead."""
    from triton.runtime import interpreter

    patch = interpreter._patch_lang_tensor
    if getattr(patch, "aotc_index_fix", False):
        return

    def patched(tensor: Any, scope: Any) -> None:
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched.aotc_index_fix = True  # type: ignore[attr-defined]
    interpreter._patch_lang_tensor = patched


_index_scalars_of_any_shape()

from aot.codegen.triton.context import INDEX_ERRORS  # noqa: E402
from aot.codegen.triton.launch import TritonKernel  # noqa: E402
from aot.scheduler.schedule import Schedule, Storage  # noqa: E402


def _widen_bf16_dots() -> None:
    """Triton 3.6's interpreter keeps bfloat16 as raw uint16 and its tl.dot
    multiplies those bits; widen bfloat16 operands to float32 first (exact,
    and the GPU accumulates bfloat16 dots in float32 too)."""
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    if getattr(builder, "_aotc_bf16_dot", False):
        return
    original = builder.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        def widen(x):
            if x.dtype.scalar != triton.language.bfloat16:
                return x
            return self.cast_impl(x, triton.language.float32)

        return original(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    builder.create_dot = create_dot
    builder._aotc_bf16_dot = True


_widen_bf16_dots()
_counter = itertools.count()
_module_dir = Path(tempfile.mkdtemp(prefix="aotc-triton-interp-"))


class InterpretedIndexError(RuntimeError):
    pass


def load_kernel(kernel: TritonKernel) -> Any:
    """|kernel|'s @triton.jit function, decorated in interpreter mode."""
    os.environ["TRITON_INTERPRET"] = "1"
    from aot.codegen.triton.interpreter_libdevice import install

    install()  # libdevice has no interpreter binding of its own
    name = f"aotc_interp_{next(_counter)}_{kernel.name}"
    path = _module_dir / f"{name}.py"
    path.write_text(kernel.source)  # triton.jit reads the source back from the file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, kernel.name)


def _int(expr: Any, values: dict[sympy.Symbol, int]) -> int:
    return int(sympy.sympify(expr).subs(values))


def run_interpreted(
    schedule: Schedule,
    launches: Sequence[Sequence[TritonKernel]],
    inputs: Sequence[torch.Tensor],
    constants: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """Runs |launches| (generate_triton's result for |schedule|) on CPU
    tensors: |inputs| as the model takes them (mutated in place like the
    runtime does), |constants| in graph.constants order. Returns the outputs."""
    graph = schedule.graph
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not t.is_contiguous():
            raise ValueError(f"input {i} must be contiguous (the CUDA runtime refuses it too)")
    symbols = {s.symbol: int(inputs[s.input_index].shape[s.dim]) for s in graph.symbols}
    outputs = [
        torch.empty([_int(s, symbols) for s in b.layout.sizes], dtype=b.dtype)
        for b in graph.outputs
    ]
    workspace = torch.zeros(max(_int(schedule.workspace_bytes, symbols), 1), dtype=torch.uint8)
    # Garbage, not zeros: a kernel that reads before writing must show up.
    workspace.random_(0, 256)
    dtypes: dict[str, torch.dtype] = {b.name: b.dtype for b in graph.inputs}
    dtypes.update({c.buffer.name: c.buffer.dtype for c in graph.constants})
    for node in graph.nodes:
        for b in getattr(node, "outputs", None) or [node]:
            dtypes[b.name] = b.dtype
    constants = [c.contiguous() for c in constants]

    def memory(name: str) -> torch.Tensor:
        p = schedule.placements[name]
        if p.storage is Storage.INPUT:
            return inputs[p.index].view(-1)
        if p.storage is Storage.CONSTANT:
            return constants[p.index].view(-1)
        if p.storage is Storage.OUTPUT:
            return outputs[p.index].view(-1)
        if p.storage is Storage.WORKSPACE:
            offset = _int(p.offset, symbols)
            size = dtypes[name].itemsize
            raw = workspace[offset:]
            raw = raw[: raw.numel() // size * size]
            return raw.view(dtypes[name])
        raise ValueError(f"buffer {name} is {p.storage.value}: it has no memory")

    errors_by_kernel = []
    for kernels in launches:
        for kernel in kernels:
            fn = load_kernel(kernel)
            errors = torch.zeros(4, dtype=torch.int64)
            args = []
            for arg in kernel.args:
                if arg.kind == "pointer":
                    base = errors if arg.buffer == INDEX_ERRORS else memory(arg.buffer)
                    args.append(base[_int(arg.offset, symbols) :])
                elif arg.kind == "size":
                    args.append(_int(arg.value, symbols))
                else:
                    args.append(float(arg.value))
            grid = tuple(_int(g, symbols) for g in kernel.grid)
            if min(grid) > 0:
                fn[grid](*args, **kernel.constexprs)
            errors_by_kernel.append((kernel, errors))
            if errors[0] != 0:  # the wrapper reports after the run; the first one wins
                value, size, check = (int(v) for v in errors[1:])
                raise InterpretedIndexError(
                    f"{kernel.name}: index {value} out of range [0, {size}) for "
                    f"{kernel.index_checks[check]}"
                )
    for index, buffer in graph.input_mutations:
        if schedule.placements.get(buffer.name) != _home(Storage.INPUT, index):
            inputs[index].view(-1).copy_(memory(buffer.name)[: inputs[index].numel()])
    constant_index = {c.name: i for i, c in enumerate(graph.constants)}
    for name, buffer in graph.state_mutations:
        i = constant_index[name]
        if schedule.placements.get(buffer.name) != _home(Storage.CONSTANT, i):
            constants[i].view(-1).copy_(memory(buffer.name)[: constants[i].numel()])
    return outputs


def _home(storage: Storage, index: int) -> Any:
    from aot.scheduler.schedule import Placement

    return Placement(storage, index)


def compile_and_interpret(
    module: torch.nn.Module,
    inputs: Sequence[Any],
    dynamic_shapes: Any = None,
) -> tuple[list[torch.Tensor], Schedule, list[list[TritonKernel]]]:
    """Exports |module| for cuda (sm_90) up to codegen and runs the kernels
    interpreted on copies of |inputs|. Returns (outputs, schedule, launches)."""
    from aot.codegen.triton.generate import generate_triton
    from aot.codegen.wrapper.cpp_wrapper import debug_handles
    from aot.export import lower
    from aot.frontend import capture_module
    from aot.options import ExportOptions
    from aot.scheduler import schedule as make_schedule

    options = ExportOptions(device="cuda", arch="sm_90")
    exported = capture_module(
        module, tuple(inputs), options, name="model", dynamic_shapes=dynamic_shapes
    )
    graph = lower(exported)
    plan = make_schedule(graph)
    launches = generate_triton(plan, debug_handles(plan))
    tensors = [t.clone() for t in inputs if isinstance(t, torch.Tensor)]
    constants = [c.value for c in graph.constants]
    return run_interpreted(plan, launches, tensors, constants), plan, launches
