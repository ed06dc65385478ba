"""AOTCRunnerUtil: compile a module with aotc, run it through the real C++
runtime, compare with eager. The shape of PyTorch's AOTIRunnerUtil.

    from aot.testing import AOTCRunnerUtil, check_model

    outputs = AOTCRunnerUtil.run(model, (x,))
    check_model(self, model, (x,))          # inside a unittest.TestCase

Inputs and outputs are pytrees as torch.export allows them: tuples, lists,
dicts, nested, with non-tensor leaves (ints, floats, bools, None, strings).

- Inputs. Keyword inputs (``example_kwargs``) are bound to the model's forward
  signature and compiled as positional inputs, defaults filled in, so a package
  always takes one tuple of positional inputs. The runtime gets the tensor
  leaves, flattened in torch.utils._pytree order (the order torch.export uses:
  positional inputs first, then each container's children; dicts in their
  key order). torch.export specialises non-tensor leaves: at call time each
  one must equal the example's value, else an InputMismatchError names it
  (``scale``, ``d['b'][0]``, ``args[2]``).
- Outputs come back in the model's structure (the package's recorded
  ``out_spec``); a single tensor comes back as a tensor.

The package's compiler metadata (aot/export.py) records ``in_spec`` and
``out_spec`` but not the parameter names nor the values of non-tensor input
leaves, so compile() writes them next to the package as
``<package>.inputs.json`` (see INPUTS_SUFFIX). load() reads that file when it
is there, and also a package metadata key ``inputs`` of the same format should
the compiler ever record it; without either (a package written by
`aotc export`), positional inputs are checked against ``in_spec`` only.

Tolerances of check_model (when atol/rtol are not given): those of
torch.testing.assert_close per dtype (float32: atol 1e-5, rtol 1.3e-6;
float64: 1e-7, 1e-7), looser for the 16-bit floats (LOOSER_TOLERANCES:
bfloat16 2e-2/2e-2, float16 2e-3/2e-3), since a compiled kernel rounds at
other points than eager does. Integer and bool outputs always compare exactly.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from . import structure
from .options import ExportOptions

# (atol, rtol) used by check_model when none are given; other dtypes use
# torch.testing.assert_close's defaults. bfloat16 keeps 8 bits of mantissa
# (float16 11), and a compiled kernel rounds at other points than eager does.
LOOSER_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}

# compile() writes the parameter names and non-tensor input leaves here.
INPUTS_SUFFIX = ".inputs.json"

_NO_VALUE = object()


class InputMismatchError(ValueError):
    """The inputs given to a loaded package do not match what it was compiled for."""


# --------------------------------------------------------------------------- #
# Inputs: binding keyword inputs, the recorded signature                       #
# --------------------------------------------------------------------------- #


def _forward_signature(model: Any) -> inspect.Signature | None:
    fn = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _positional_parameters(sig: inspect.Signature | None) -> list[inspect.Parameter] | None:
    if sig is None:
        return None
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            params.append(p)
        else:
            break  # *args, keyword-only: bound positionally only up to here
    return params


def bind_inputs(
    model: Any, args: Sequence[Any], kwargs: dict[str, Any] | None
) -> tuple[tuple[Any, ...], list[str]]:
    """|args| and |kwargs| as one positional tuple for |model|'s forward (the
    defaults of parameters not given filled in), with the parameter names."""
    args = tuple(args)
    sig = _forward_signature(model)
    params = _positional_parameters(sig)
    if not kwargs:
        names = [p.name for p in params] if params is not None else []
        names = names[: len(args)] + [f"args[{i}]" for i in range(len(names), len(args))]
        return args, names
    if sig is None or params is None:
        raise TypeError("keyword inputs need a model whose forward signature can be inspected")
    bound = sig.bind(*args, **kwargs)
    extra = [
        k for k, v in sig.parameters.items() if v.kind is v.KEYWORD_ONLY and k in bound.arguments
    ]
    if extra or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values() if p.name in kwargs):
        raise TypeError(
            f"keyword-only inputs ({', '.join(extra) or '**kwargs'}) cannot be compiled: aotc "
            "binds keyword inputs to positional parameters"
        )
    bound.apply_defaults()
    # Up to the last parameter given: the defaults before it fill the gaps.
    given = [i for i, p in enumerate(params) if p.name in kwargs or i < len(args)]
    count = max(given) + 1
    return tuple(bound.arguments[p.name] for p in params[:count]), [p.name for p in params[:count]]


def _bind_dynamic_shapes(
    model: Any, args: Sequence[Any], kwargs: dict[str, Any] | None, dynamic_shapes: Any
) -> Any:
    """torch.export's |dynamic_shapes| for the inputs as bind_inputs() binds them."""
    if dynamic_shapes is None or not kwargs:
        return dynamic_shapes
    sig = _forward_signature(model)
    assert sig is not None
    _, names = bind_inputs(model, args, kwargs)
    if isinstance(dynamic_shapes, dict):
        by_name = dict(dynamic_shapes)
    else:  # torch.export: in the order of signature.bind(*args, **kwargs).arguments
        given = list(sig.bind(*args, **kwargs).arguments)
        by_name = dict(zip(given, dynamic_shapes, strict=True))
    return tuple(by_name.get(n) for n in names)


class _InputBinder:
    """Maps a call's (args, kwargs) to the package's tensor inputs."""

    def __init__(self, in_spec: pytree.TreeSpec | None, record: dict[str, Any] | None) -> None:
        self.in_spec = in_spec
        record = record or {}
        self.names: list[str] = list(record.get("parameters") or [])
        self.constants: dict[int, Any] | None = None
        if "constants" in record:
            self.constants = {
                int(k): structure.from_json_leaf(v) for k, v in record["constants"].items()
            }

    def _name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"args[{i}]"

    def _default(self, i: int) -> Any:
        """Parameter |i|'s example value when it has no tensor leaves."""
        spec = self.in_spec
        if spec is None or self.constants is None or i >= spec.num_children:
            return _NO_VALUE
        children = _children(spec)
        start = sum(children[j].num_leaves for j in range(i))
        sub = children[i]
        idx = range(start, start + sub.num_leaves)
        if not all(k in self.constants for k in idx):
            return _NO_VALUE
        return pytree.tree_unflatten([self.constants[k] for k in idx], sub)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if not kwargs:
            return args
        if not self.names:
            raise InputMismatchError(
                "keyword inputs given, but the package does not record its parameter names "
                f"(no {INPUTS_SUFFIX} next to it); pass the inputs positionally"
            )
        values = list(args)
        kwargs = dict(kwargs)
        for i in range(len(args), len(self.names)):
            name = self.names[i]
            if name in kwargs:
                values.append(kwargs.pop(name))
                continue
            default = self._default(i)
            if default is _NO_VALUE:
                raise InputMismatchError(f"input {name!r} is missing")
            values.append(default)
        if kwargs:
            raise InputMismatchError(
                f"unexpected keyword input(s) {', '.join(map(repr, kwargs))}; "
                f"the package takes {', '.join(self.names)}"
            )
        return tuple(values)

    def leaf_path(self, path: tuple[Any, ...]) -> str:
        first = path[0]
        index = getattr(first, "idx", None)
        head = self._name(index) if isinstance(index, int) else pytree.keystr(path[:1])
        return head + pytree.keystr(path[1:])

    def tensors(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
        inputs = self.bind(args, kwargs)
        with_paths, spec = pytree.tree_flatten_with_path(inputs)
        if self.in_spec is not None and spec != self.in_spec:
            raise InputMismatchError(self._structure_difference(inputs, spec))
        tensors = []
        for i, (path, leaf) in enumerate(with_paths):
            expected = _NO_VALUE if self.constants is None else self.constants.get(i, _NO_VALUE)
            if isinstance(leaf, torch.Tensor):
                if self.constants is not None and i in self.constants:
                    raise InputMismatchError(
                        f"input {self.leaf_path(path)} is a tensor, but the package was "
                        f"compiled with the constant {expected!r} there"
                    )
                tensors.append(leaf)
                continue
            if self.constants is None:
                continue  # nothing recorded: cannot check
            if expected is _NO_VALUE:
                raise InputMismatchError(
                    f"input {self.leaf_path(path)} is {leaf!r}, "
                    "but the package takes a tensor there"
                )
            if not _same_constant(leaf, expected):
                raise InputMismatchError(
                    f"input {self.leaf_path(path)} is {leaf!r}, but the package was compiled "
                    f"with {expected!r} (torch.export specialises non-tensor inputs; "
                    "compile again for another value)"
                )
        return tensors

    def _structure_difference(self, inputs: tuple[Any, ...], spec: pytree.TreeSpec) -> str:
        assert self.in_spec is not None
        exp = self.in_spec
        if spec.num_children == exp.num_children:
            for i, (a, e) in enumerate(zip(_children(spec), _children(exp), strict=True)):
                if a != e:
                    return (
                        f"input {self._name(i)} has the structure {a}, but the package was "
                        f"compiled for {e}"
                    )
        return (
            f"{spec.num_children} inputs given, but the package was compiled for "
            f"{exp.num_children} ({', '.join(self.names) or 'positional'})"
        )


def _children(spec: pytree.TreeSpec) -> list[pytree.TreeSpec]:
    children = getattr(spec, "children", None)
    return list(children()) if callable(children) else list(spec.children_specs)


def _same_constant(a: Any, b: Any) -> bool:
    if type(a) is not type(b) and not (
        isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool)
    ):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _load_spec(text: Any) -> pytree.TreeSpec | None:
    if not isinstance(text, str):
        return None
    try:
        return pytree.treespec_loads(text)
    except Exception:  # written by another torch, or not serialisable
        return None


def _read_input_record(path: str, metadata: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(metadata.get("inputs"), dict):
        return metadata["inputs"]
    sidecar = Path(str(path) + INPUTS_SUFFIX)
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    return None


# --------------------------------------------------------------------------- #
# AOTCRunnerUtil                                                               #
# --------------------------------------------------------------------------- #


class AOTCRunnerUtil:
    @staticmethod
    def compile(
        model: torch.nn.Module,
        example_inputs: Sequence[Any],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
        example_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Compiles |model| into a package in a new temporary directory and
        returns its path (the caller may delete the directory). A model or
        inputs on a GPU are captured from CPU copies ([Note: CPU capture])."""
        from .export import compile_module

        model, example_inputs, example_kwargs = _on_cpu(model, example_inputs, example_kwargs)
        inputs, names = bind_inputs(model, example_inputs, example_kwargs)
        dynamic_shapes = _bind_dynamic_shapes(model, example_inputs, example_kwargs, dynamic_shapes)
        record = structure.input_record(inputs, names)
        directory = Path(tempfile.mkdtemp(prefix="aotc-test-"))
        try:
            path = compile_module(
                model,
                inputs,
                directory / "model.pt2",
                options or ExportOptions(),
                name="model",
                dynamic_shapes=dynamic_shapes,
            )
            Path(str(path) + INPUTS_SUFFIX).write_text(json.dumps(record))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return str(path)

    @staticmethod
    def load(path: str, device: str | None = None) -> Callable[..., Any]:
        """The package at |path| as a callable with the model's signature:
        pytree inputs in, the model's output structure out."""
        from . import runtime

        loaded = runtime.load(path, device=device)
        # LoadedModel.metadata is the whole manifest; the compiler's own
        # metadata (aot/export.py) is its "metadata" object.
        meta = loaded.metadata.get("metadata", {}) or {}
        out_spec = _load_spec(meta.get("out_spec"))
        binder = _InputBinder(_load_spec(meta.get("in_spec")), _read_input_record(path, meta))

        out_structure = meta.get("out_structure")

        def call(*args: Any, **kwargs: Any) -> Any:
            outputs = loaded(*binder.tensors(args, kwargs))
            if out_spec is not None and out_spec.num_leaves == len(outputs):
                return pytree.tree_unflatten(list(outputs), out_spec)
            if isinstance(out_structure, dict):  # containers torch cannot serialise
                return structure.rebuild(out_structure, list(outputs))
            return outputs[0] if len(outputs) == 1 else outputs

        call.model = loaded  # type: ignore[attr-defined]  # keeps the runtime handle reachable
        return call

    @staticmethod
    def run(
        model: torch.nn.Module,
        example_inputs: Sequence[Any],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
        example_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Compiles, loads and runs |model| on |example_inputs|."""
        return AOTCRunnerUtil.run_multiple(
            model,
            [example_inputs],
            options,
            dynamic_shapes,
            list_example_kwargs=None if example_kwargs is None else [example_kwargs],
        )[0]

    @staticmethod
    def run_multiple(
        model: torch.nn.Module,
        list_example_inputs: Sequence[Sequence[Any]],
        options: ExportOptions | None = None,
        dynamic_shapes: Any = None,
        list_example_kwargs: Sequence[dict[str, Any]] | None = None,
        example_inputs: Sequence[Any] | None = None,
        example_kwargs: dict[str, Any] | None = None,
    ) -> list[Any]:
        """Compiles |model| once (from |example_inputs|/|example_kwargs|, else the
        first inputs) and runs it on each entry of |list_example_inputs| (with
        the matching entry of |list_example_kwargs|)."""
        kw_list = list(list_example_kwargs or [{}] * len(list_example_inputs))
        if len(kw_list) != len(list_example_inputs):
            raise ValueError("list_example_kwargs must have one dict per entry of inputs")
        if example_inputs is None:
            example_inputs, example_kwargs = list_example_inputs[0], kw_list[0]
        path = AOTCRunnerUtil.compile(
            model, copy.deepcopy(tuple(example_inputs)), options, dynamic_shapes,
            copy.deepcopy(example_kwargs) or None,
        )  # fmt: skip
        try:
            device = "cuda" if options is not None and options.device == "cuda" else None
            fn = AOTCRunnerUtil.load(path, device=device)
            return [
                fn(*args, **kwargs)
                for args, kwargs in zip(list_example_inputs, kw_list, strict=True)
            ]
        finally:
            # The runtime keeps the package mapped; the file itself can go.
            shutil.rmtree(Path(path).parent, ignore_errors=True)


def _on_cpu(
    model: torch.nn.Module, inputs: Sequence[Any], kwargs: dict[str, Any] | None
) -> tuple[torch.nn.Module, Sequence[Any], dict[str, Any] | None]:
    """|model|, |inputs| and |kwargs| as they are when all on CPU, else CPU copies."""
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [t for t in pytree.tree_leaves((inputs, kwargs)) if isinstance(t, torch.Tensor)]
    if all(t.device.type == "cpu" for t in tensors):
        return model, inputs, kwargs

    def to_cpu(t: Any) -> Any:
        return t.cpu() if isinstance(t, torch.Tensor) else t

    model = copy.deepcopy(model).cpu()
    return model, pytree.tree_map(to_cpu, tuple(inputs)), pytree.tree_map(to_cpu, kwargs)


# --------------------------------------------------------------------------- #
# check_model                                                                  #
# --------------------------------------------------------------------------- #


def check_model(
    testcase: Any,
    model: torch.nn.Module,
    example_inputs: Sequence[Any],
    atol: float | None = None,
    rtol: float | None = None,
    dynamic_shapes: Any = None,
    options: ExportOptions | None = None,
    example_kwargs: dict[str, Any] | None = None,
) -> None:
    """Asserts that the compiled |model| matches eager on |example_inputs|.

    Eager runs on a deep copy of the model and of the inputs (in-place ops
    cannot corrupt the comparison). Tolerances: |atol|/|rtol| when given,
    else torch.testing.assert_close's defaults per dtype, looser for
    bfloat16 and float16 (LOOSER_TOLERANCES); integers and bools exactly.
    |testcase| is a unittest.TestCase (failures through testcase.fail), or
    None (an AssertionError).
    """
    check_model_with_multiple_inputs(
        testcase,
        model,
        [example_inputs],
        atol=atol,
        rtol=rtol,
        dynamic_shapes=dynamic_shapes,
        options=options,
        list_example_kwargs=None if example_kwargs is None else [example_kwargs],
    )


def check_model_with_multiple_inputs(
    testcase: Any,
    model: torch.nn.Module,
    list_example_inputs: Sequence[Sequence[Any]],
    atol: float | None = None,
    rtol: float | None = None,
    dynamic_shapes: Any = None,
    options: ExportOptions | None = None,
    list_example_kwargs: Sequence[dict[str, Any]] | None = None,
) -> None:
    """check_model for each entry of |list_example_inputs|, compiled once from
    the first (use dynamic_shapes when the shapes vary)."""
    kw_list = list(list_example_kwargs or [{}] * len(list_example_inputs))
    expected = []
    with torch.no_grad():
        for args, kwargs in zip(list_example_inputs, kw_list, strict=True):
            ref_model = copy.deepcopy(model)
            expected.append(ref_model(*copy.deepcopy(tuple(args)), **copy.deepcopy(kwargs)))
    actual = AOTCRunnerUtil.run_multiple(
        model,
        [copy.deepcopy(tuple(a)) for a in list_example_inputs],
        options,
        dynamic_shapes,
        list_example_kwargs=copy.deepcopy(kw_list),
    )
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        prefix = "" if len(actual) == 1 else f"inputs {i}: "
        assert_close_to_eager(a, e, atol, rtol, testcase, prefix=prefix)


def tolerances(dtype: torch.dtype, atol: float | None, rtol: float | None) -> tuple[float, float]:
    """check_model's (atol, rtol) for an output of |dtype|."""
    if not (dtype.is_floating_point or dtype.is_complex):
        return 0.0, 0.0
    if atol is not None and rtol is not None:
        return atol, rtol
    if dtype in LOOSER_TOLERANCES:
        default_atol, default_rtol = LOOSER_TOLERANCES[dtype]
    else:
        default_rtol, default_atol = _assert_close_defaults(dtype)
    return (
        default_atol if atol is None else atol,
        default_rtol if rtol is None else rtol,
    )


def _assert_close_defaults(dtype: torch.dtype) -> tuple[float, float]:
    """torch.testing.assert_close's default (rtol, atol) for |dtype|."""
    try:
        from torch.testing._comparison import default_tolerances

        return default_tolerances(dtype)
    except (ImportError, TypeError):  # a private helper: its documented values
        table = {torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5)}
        table[torch.float64] = (1e-7, 1e-7)
        return table.get(dtype, (1.3e-6, 1e-5))


def assert_close_to_eager(
    actual: Any,
    expected: Any,
    atol: float | None,
    rtol: float | None,
    testcase: Any = None,
    prefix: str = "",
) -> None:
    """Compares |actual| with |expected| leaf by leaf; a failure names the
    output's path (output['logits'][1])."""

    def fail(message: str) -> None:
        message = prefix + message
        if testcase is not None:
            testcase.fail(message)
        raise AssertionError(message)

    actual_leaves, actual_spec = pytree.tree_flatten(actual)
    expected_leaves, expected_spec = pytree.tree_flatten_with_path(expected)
    if actual_spec != expected_spec:
        fail(f"output structure {actual_spec} differs from eager's {expected_spec}")
    for a, (path, e) in zip(actual_leaves, expected_leaves, strict=True):
        where = "output" + pytree.keystr(path)
        if not isinstance(e, torch.Tensor):
            if not _same_constant(a, e):
                fail(f"{where}: compiled {a!r}, eager {e!r}")
            continue
        if not isinstance(a, torch.Tensor):
            fail(f"{where}: compiled {type(a).__name__}, eager a tensor")
        tol_a, tol_r = tolerances(e.dtype, atol, rtol)
        try:
            torch.testing.assert_close(a, e, atol=tol_a, rtol=tol_r, equal_nan=True)
        except AssertionError as exc:
            fail(f"{where} (atol {tol_a:g}, rtol {tol_r:g}): {exc}")


def median_ms(fn: Callable[[int], object], repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of fn(k) over |repeats| calls after |warmup| (k
    counts calls, to rotate inputs), for the benchmark scripts. Sleeps 0.3 s
    first: the previous system's threads (eager's OpenMP workers, the
    runtime's pool) spin for a while after their last call and would take a
    core from this one."""
    time.sleep(0.3)
    for k in range(warmup):
        fn(k)
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        fn(k)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
