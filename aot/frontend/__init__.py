"""The frontend: model.py (or an in-memory module) in, ExportedModel out.

Entry points: run_frontend (a model file) and capture_module (a module in
memory, for the test harness). node_location and describe_node name a graph
node's model.py line for the error messages of later stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..options import ExportOptions
from .capture import capture
from .decompositions import AOTC_LOWERED_OPS, aotc_decomposition_table
from .errors import FrontendError
from .exported import ExportedModel
from .loader import load_model_file, sanitize_name
from .locations import describe_node, module_source_file, node_location

__all__ = [
    "AOTC_LOWERED_OPS",
    "ExportedModel",
    "FrontendError",
    "aotc_decomposition_table",
    "capture_module",
    "describe_node",
    "node_location",
    "run_frontend",
]


def run_frontend(path: Path, options: ExportOptions) -> ExportedModel:
    """Loads model.py at |path|, captures its model on CPU and decomposes it."""
    # Stage 1: import model.py and call get_model() / get_example_inputs() / ...
    loaded = load_model_file(Path(path), options)
    # Stage 2: checks, dtype cast, torch.export, refusals, decompositions. The
    # module is ours (just built by get_model()), so it is cast in place.
    return capture(
        loaded.module,
        loaded.example_inputs,
        options,
        name=loaded.name,
        source_path=loaded.path,
        dynamic_shapes=loaded.dynamic_shapes,
        copy_before_cast=False,
    )


def capture_module(
    module: torch.nn.Module,
    example_inputs: tuple[Any, ...],
    options: ExportOptions,
    name: str = "model",
    dynamic_shapes: Any = None,
) -> ExportedModel:
    """Captures an in-memory |module| (the test harness's path). With
    options.dtype set, a copy is cast: the caller's module is not changed."""
    if not isinstance(module, torch.nn.Module):
        raise FrontendError(f"expected an nn.Module, got {type(module).__name__}")
    return capture(
        module,
        tuple(example_inputs) if isinstance(example_inputs, list) else example_inputs,
        options,
        name=sanitize_name(name),
        source_path=module_source_file(module),
        dynamic_shapes=dynamic_shapes,
    )
