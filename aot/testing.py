"""AOTCRunnerUtil: compile a module with aotc, run it through the real C++
runtime, compare with eager. The shape of PyTorch's AOTIRunnerUtil.

    from aot.testing import AOTCRunnerUtil, check_model

    outputs = AOTCRunnerUtil.run(model, (x,))
    check_model(self, model, (x,))          # inside a unittest.TestCase

Packages are compiled into temporary directories. load() returns a callable
taking the model's inputs (any pytree of tensors, flattened as torch.export
flattens them) and returning the outputs in the model's own structure: a
single tensor when the model returns one tensor.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from .options import ExportOptions

# (atol, rtol) used by check_model when none are given; other dtypes use
# torch.testing.assert_close's defaults. bfloat16 keeps 8 bits of mantissa,
# and a compiled kernel rounds at other points than eager does.
LOOSER_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}


class AOTCRunnerUtil:
    @staticmethod
    def compile(
        model: torch.nn.Module,
        example_inputs: tuple[Any, ...],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
    ) -> str:
        """Compiles |model| into a package in a new temporary directory and
        returns its path (the caller may delete the directory)."""
        from .export import compile_module

        directory = Path(tempfile.mkdtemp(prefix="aotc-test-"))
        try:
            path = compile_module(
                model,
                tuple(example_inputs),
                directory / "model.pt2",
                options or ExportOptions(),
                name="model",
                dynamic_shapes=dynamic_shapes,
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return str(path)

    @staticmethod
    def load(path: str, device: str | None = None) -> Callable[..., Any]:
        """The package at |path| as a callable with the model's signature."""
        from . import runtime

        loaded = runtime.load(path, device=device)
        # LoadedModel.metadata is the whole manifest; the compiler's own
        # metadata (aot/export.py) is its "metadata" object.
        out_spec = _load_spec(loaded.metadata.get("metadata", {}).get("out_spec"))

        def call(*args: Any, **kwargs: Any) -> Any:
            flat = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            outputs = loaded(*flat)
            if out_spec is None or out_spec.num_leaves != len(outputs):
                return outputs[0] if len(outputs) == 1 else outputs
            return pytree.tree_unflatten(list(outputs), out_spec)

        call.model = loaded  # type: ignore[attr-defined]  # keeps the runtime handle reachable
        return call

    @staticmethod
    def run(
        model: torch.nn.Module,
        example_inputs: tuple[Any, ...],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
    ) -> Any:
        """Compiles, loads and runs |model| on |example_inputs|."""
        return AOTCRunnerUtil.run_multiple(
            model, [example_inputs], options, dynamic_shapes, example_inputs=example_inputs
        )[0]

    @staticmethod
    def run_multiple(
        model: torch.nn.Module,
        list_example_inputs: Sequence[tuple[Any, ...]],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
        example_inputs: tuple[Any, ...] | None = None,
    ) -> list[Any]:
        """Compiles |model| once (from |example_inputs|, else the first inputs)
        and runs it on each inputs tuple of |list_example_inputs|."""
        inputs = example_inputs if example_inputs is not None else list_example_inputs[0]
        path = AOTCRunnerUtil.compile(model, inputs, options, dynamic_shapes)
        try:
            fn = AOTCRunnerUtil.load(path)
            return [fn(*args) for args in list_example_inputs]
        finally:
            # The runtime keeps the package mapped; the file itself can go.
            shutil.rmtree(Path(path).parent, ignore_errors=True)


def _load_spec(text: Any) -> pytree.TreeSpec | None:
    if not isinstance(text, str):
        return None
    try:
        return pytree.treespec_loads(text)
    except Exception:  # written by another torch, or not serialisable
        return None


def check_model(
    testcase: Any,
    model: torch.nn.Module,
    example_inputs: tuple[Any, ...],
    atol: float | None = None,
    rtol: float | None = None,
    dynamic_shapes: Any = None,
    options: ExportOptions | None = None,
) -> None:
    """Asserts that the compiled |model| matches eager on |example_inputs|.

    Tolerances: |atol|/|rtol| when given, else torch.testing.assert_close's
    defaults per dtype, looser for bfloat16 and float16 (LOOSER_TOLERANCES).
    |testcase| is a unittest.TestCase (or None under pytest).
    """
    with torch.no_grad():
        expected = model(*example_inputs)
    actual = AOTCRunnerUtil.run(model, example_inputs, options, dynamic_shapes)
    assert_close_to_eager(actual, expected, atol, rtol, testcase)


def assert_close_to_eager(
    actual: Any, expected: Any, atol: float | None, rtol: float | None, testcase: Any = None
) -> None:
    actual_leaves, actual_spec = pytree.tree_flatten(actual)
    expected_leaves, expected_spec = pytree.tree_flatten(expected)
    if actual_spec != expected_spec:
        message = f"output structure {actual_spec} differs from eager's {expected_spec}"
        if testcase is not None:
            testcase.fail(message)
        raise AssertionError(message)
    for i, (a, e) in enumerate(zip(actual_leaves, expected_leaves, strict=True)):
        tol_a, tol_r = atol, rtol
        if tol_a is None and tol_r is None and e.dtype in LOOSER_TOLERANCES:
            tol_a, tol_r = LOOSER_TOLERANCES[e.dtype]
        elif (tol_a is None) != (tol_r is None):  # assert_close needs both or neither
            tol_a = 0.0 if tol_a is None else tol_a
            tol_r = 0.0 if tol_r is None else tol_r
        try:
            torch.testing.assert_close(a, e, atol=tol_a, rtol=tol_r, equal_nan=True)
        except AssertionError as exc:
            message = f"output {i}: {exc}"
            if testcase is not None:
                testcase.fail(message)
            raise AssertionError(message) from None
