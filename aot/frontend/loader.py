"""Loading model.py: import it as a module (so its tracebacks and the graph's
stack traces name the file) and call its get_model(), get_example_inputs()
and optional get_dynamic_shapes() (or the callables the options name).

The file is imported with importlib under a fresh, unique module name that is
registered in sys.modules (dataclasses and pickling look classes up there),
with the file's folder first on sys.path while it loads and runs its
functions, as `python model.py` would have it, so helpers beside it import.
It is never exec'd from a string: that would lose the stack traces.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..options import ExportOptions
from .errors import FrontendError

_UNIQUE = itertools.count()
CONVENTION = (
    "model.py must define get_model() returning an nn.Module and get_example_inputs() "
    "returning a tuple of inputs; optional get_dynamic_shapes()"
)


@dataclass(frozen=True)
class LoadedModel:
    """What model.py provides, before capture."""

    name: str
    path: Path
    module: torch.nn.Module
    example_inputs: tuple[Any, ...]
    dynamic_shapes: Any  # torch.export's dynamic_shapes argument, or None


def sanitize_name(stem: str) -> str:
    """A package/model name from a file stem: [A-Za-z0-9_.-], no leading dot
    or dash (no hidden or option-like names, no '..'); "model" if empty."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-")
    return name or "model"


def load_model_file(path: Path, options: ExportOptions) -> LoadedModel:
    """Imports |path| and calls the callables named by |options|."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a model file" if path.is_dir() else "does not exist"
        raise FrontendError(f"model file {path} {what}")
    path = path.resolve()
    with _model_dir_on_sys_path(path.parent):
        py_module = _import(path)
        _require_callables(py_module, path, options)
        model = _call(py_module, options.model_fn, path)
        inputs = _call(py_module, options.inputs_fn, path)
        dynamic_shapes = None
        if hasattr(py_module, options.dynamic_shapes_fn):
            dynamic_shapes = _call(py_module, options.dynamic_shapes_fn, path)
        elif options.dynamic_shapes_fn != ExportOptions.dynamic_shapes_fn:
            raise FrontendError(f"{path} does not define {options.dynamic_shapes_fn}()")
    _check_types(path, options, model, inputs, dynamic_shapes)
    if options.dynamic:
        from .dynamic_spec import dynamic_shapes_from_specs

        dynamic_shapes = dynamic_shapes_from_specs(options.dynamic, model, inputs)
    return LoadedModel(sanitize_name(path.stem), path, model, inputs, dynamic_shapes)


def user_location(exc: BaseException, path: Path) -> str | None:
    """Where |exc| was raised in the model file, as "model.py:12: <source
    line>": the innermost traceback frame in |path| (for a SyntaxError in
    it, the offending line); None when no frame is in |path|."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        return f"{path.name}:{exc.lineno}: {(exc.text or '').strip()}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    if not frames:
        return None
    frame = frames[-1]
    return f"{path.name}:{frame.lineno}: {(frame.line or '').strip()}"


def _import(path: Path) -> ModuleType:
    ident = re.sub(r"\W", "_", path.stem)
    module_name = f"aotc_model_{ident}_{next(_UNIQUE)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FrontendError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise FrontendError(_failure(f"importing {path} failed", exc, path)) from exc
    return module


def _require_callables(module: ModuleType, path: Path, options: ExportOptions) -> None:
    wanted = (options.model_fn, options.inputs_fn)
    missing = [f"{n}()" for n in wanted if not callable(getattr(module, n, None))]
    if not missing:
        return
    convention = CONVENTION
    renames = {
        ExportOptions.model_fn: options.model_fn,
        ExportOptions.inputs_fn: options.inputs_fn,
        ExportOptions.dynamic_shapes_fn: options.dynamic_shapes_fn,
    }
    for default, chosen in renames.items():
        convention = convention.replace(f"{default}()", f"{chosen}()")
    raise FrontendError(f"{path} does not define {' or '.join(missing)}: {convention}")


def _call(module: ModuleType, fn_name: str, path: Path) -> Any:
    fn: Callable[[], Any] = getattr(module, fn_name)
    if not callable(fn):
        raise FrontendError(f"{fn_name} in {path} is not a function")
    try:
        return fn()
    except Exception as exc:
        raise FrontendError(_failure(f"{fn_name}() in {path} raised", exc, path)) from exc


def _check_types(
    path: Path, options: ExportOptions, model: Any, inputs: Any, dynamic_shapes: Any
) -> None:
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(
            f"{options.model_fn}() in {path} returned {type(model).__name__}, not an nn.Module"
        )
    if not isinstance(inputs, tuple):
        hint = " (wrap a single input as (x,))" if isinstance(inputs, torch.Tensor) else ""
        raise FrontendError(
            f"{options.inputs_fn}() in {path} returned {type(inputs).__name__}, "
            f"not a tuple of inputs{hint}"
        )
    if dynamic_shapes is not None and not isinstance(dynamic_shapes, (dict, tuple, list)):
        raise FrontendError(
            f"{options.dynamic_shapes_fn}() in {path} returned {type(dynamic_shapes).__name__}; "
            "it must return torch.export's dynamic_shapes argument (a dict, tuple or list)"
        )


def _failure(what: str, exc: BaseException, path: Path) -> str:
    where = user_location(exc, path)
    at = f"\n  at {where}" if where else ""
    return f"{what}: {type(exc).__name__}: {exc}{at}"


@contextmanager
def _model_dir_on_sys_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)  # the first occurrence: ours
        except ValueError:
            pass  # the model removed it itself
