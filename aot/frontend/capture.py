"""Capture on CPU: checks, the dtype cast, torch.export.export, refusals,
then aotc's decompositions. The graph as captured is the "pre-grad" graph of
provenance; the decomposed one is the "post-grad" graph.

[Note: CPU capture] Export always runs on CPU: a CPU-only torch refuses CUDA
tensors, even fake ones. Model code that branches on torch.cuda.is_available()
takes its CPU path. The target device is an export option applied after
capture: lowering and scheduling are device-neutral, and a cuda package gets
Triton kernels at codegen (docs/ARCHITECTURE.md, GPU backend).
"""

from __future__ import annotations

import copy
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from ..options import ExportOptions
from .checks import check_program, refuse_non_cpu_tensors, refuse_training_mode
from .decompositions import aotc_decomposition_table
from .errors import FrontendError
from .exported import ExportedModel
from .locations import Frame, format_frame, in_torch, user_frame

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def capture(
    module: torch.nn.Module,
    example_inputs: tuple[Any, ...],
    options: ExportOptions,
    name: str,
    source_path: Path | None,
    dynamic_shapes: Any = None,
    copy_before_cast: bool = True,
) -> ExportedModel:
    """Exports |module| on CPU and decomposes it with aotc's table.

    With options.dtype set, the module and the floating-point inputs are cast
    first; |copy_before_cast| casts a deep copy, leaving the caller's module
    as it was."""
    if not isinstance(example_inputs, tuple):
        raise FrontendError(f"example inputs must be a tuple, got {type(example_inputs).__name__}")
    refuse_training_mode(module)
    module, example_inputs = cast_to_dtype(module, example_inputs, options.dtype, copy_before_cast)
    refuse_non_cpu_tensors(module, example_inputs)
    # Stage 1: capture (the "pre-grad" graph), refused early if random or data-dependent.
    start = time.perf_counter()
    pre_grad = _export(module, example_inputs, dynamic_shapes, source_path)
    export_seconds = time.perf_counter() - start
    check_program(pre_grad, source_path)
    # Stage 2: decompose to the ops aotc lowers; decompositions may add random ops.
    program = decompose(pre_grad)
    check_program(program, source_path)
    return ExportedModel(
        name=name,
        source_path=source_path,
        pre_grad=pre_grad,
        program=program,
        module=module,
        example_inputs=example_inputs,
        options=options,
        export_seconds=export_seconds,
    )


def decompose(pre_grad: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """pre_grad.run_decompositions(aotc's table); |pre_grad| is left intact."""
    with warnings.catch_warnings():
        # torch 2.13 warns from its own pytree pickling inside run_decompositions.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        return pre_grad.run_decompositions(aotc_decomposition_table())


def cast_to_dtype(
    module: torch.nn.Module, example_inputs: tuple[Any, ...], dtype: str | None, copy_first: bool
) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """|module| and the floating-point tensors of |example_inputs| cast to
    |dtype| (a name from ExportOptions); unchanged when |dtype| is None."""
    if dtype is None:
        return module, example_inputs
    target = _DTYPES[dtype]
    if copy_first:
        module = copy.deepcopy(module)
    module = module.to(target)  # nn.Module.to(dtype) casts floating-point tensors only
    return module, tuple(_cast_value(v, target) for v in example_inputs)


def _cast_value(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast_value(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast_value(v, dtype) for k, v in value.items()}
    return value


def _export(
    module: torch.nn.Module,
    example_inputs: tuple[Any, ...],
    dynamic_shapes: Any,
    source_path: Path | None,
) -> torch.export.ExportedProgram:
    try:
        return torch.export.export(module, example_inputs, dynamic_shapes=dynamic_shapes)
    except Exception as exc:
        raise FrontendError(_export_failure(exc, source_path, dynamic_shapes)) from exc


def _export_failure(exc: BaseException, source_path: Path | None, dynamic_shapes: Any) -> str:
    # The model's innermost frame in the traceback (aotc's own frames left out;
    # a frame inside torch adds nothing to torch's message).
    aot_dir = str(Path(__file__).resolve().parent.parent) + os.sep
    frames = [
        Frame(f.filename, f.lineno or 0, f.name, (f.line or "").strip())
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.realpath(f.filename).startswith(aot_dir)
    ]
    frame = user_frame(frames, source_path)
    where = ""
    if frame is not None and not in_torch(frame):
        where = f"\n  at {format_frame(frame, source_path)}"
    hint = ""
    if dynamic_shapes is not None and "specialized" in str(exc):
        hint = (
            "\nHint: torch.export specialises a dynamic dimension whose example size is "
            "0 or 1; give it an example size >= 2"
        )
    return f"torch.export could not capture the model: {type(exc).__name__}: {exc}{where}{hint}"
