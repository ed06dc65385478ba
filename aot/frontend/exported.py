"""ExportedModel: the frontend's output (captured and decomposed on CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..options import ExportOptions


@dataclass
class ExportedModel:
    name: str  # package/model name: the model file's stem, [A-Za-z0-9_.-]
    source_path: Path | None  # model.py (None when compiled from a module in memory)
    pre_grad: torch.export.ExportedProgram  # as torch.export captured it
    program: torch.export.ExportedProgram  # after aotc's decompositions ("post-grad")
    module: torch.nn.Module  # the eval-mode module (for eager reference outputs)
    example_inputs: tuple[Any, ...]  # the user inputs as the model takes them (cast per options)
    options: ExportOptions
    export_seconds: float = 0.0  # time spent in torch.export.export itself
