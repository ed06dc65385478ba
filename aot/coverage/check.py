"""Compile a group of cases into one package, run it through the C++ runtime,
compare every case with eager.

[Note: grouped cases] Compiling each sample on its own would cost a CMake
build per sample (about 35,000 in OpInfo's float32 + bfloat16 samples). A
group of cases is compiled as one module (OneOpModule) instead; when the
group fails as a whole (capture, lowering, build or run), it is split in
halves until the failure is pinned on single cases, which are then recorded
with their own error. Mismatches need no splitting: every case's outputs are
compared on their own. One shortcut: a case whose part of the captured graph
holds an op no lowering knows is recorded as unsupported at once, without
the halving.

Statuses, and whether a case counts in the coverage denominator:
- pass: compiled, ran, matched eager within tolerance (counts);
- fail: mismatch, run-time error, C++ build error, or an internal compiler
  error (counts);
- unsupported: aotc refused it with its own error: an op or a variant no
  lowering handles, a refusal of the frontend (counts);
- crash / timeout: the worker died or hung on it (sweep.py) (counts);
- not_exportable: torch.export itself could not capture the one-op module
  (outside the denominator: the op does not export on CPU);
- eager_error: eager PyTorch raised on the sample (outside the denominator).

[Note: reference in float] A bfloat16 case is compared with eager twice:
with eager's own bfloat16 result, and with eager's result on float32 copies
of the inputs cast back to the output's dtype (Inductor's OpInfo sweep does
the same, `reference_in_float`). It passes when either matches within
OpInfo's tolerances. Eager rounds to bfloat16 after every aten op of a
composite op (log_softmax is max, sub, exp, sum, log, sub); a fused kernel
rounds once at the end, which is the float32 result rounded. Neither
rounding is wrong, and the float32 reference is the more exact one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from ..options import ExportOptions
from .cases import Case, CaseId, OneOpModule, flat_inputs

PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"
CRASH, TIMEOUT = "crash", "timeout"
NOT_EXPORTABLE, EAGER_ERROR = "not_exportable", "eager_error"
COUNTED = (PASS, FAIL, UNSUPPORTED, CRASH, TIMEOUT)

_REASON_LIMIT = 300


@dataclass
class Result:
    id: CaseId
    status: str
    reason: str = ""
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["id"] = asdict(self.id)
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Result:
        return Result(CaseId(**d["id"]), d["status"], d.get("reason", ""), d.get("description", ""))


def check_cases(cases: Sequence[Case], options: ExportOptions | None = None) -> list[Result]:
    """Every case of |cases| checked (see the module note), in their order."""
    options = options or ExportOptions(provenance=False, build_jobs=1)
    results: dict[CaseId, Result] = {}
    live = []
    for case in cases:
        try:
            case.expected = eager_outputs(case)
        except Exception as e:
            results[case.id] = Result(case.id, EAGER_ERROR, _reason(e), case.description)
            continue
        if not case.expected:
            reason = "the op returns no tensor"
            results[case.id] = Result(case.id, NOT_EXPORTABLE, reason, case.description)
            continue
        if case.id.dtype == "bfloat16":
            case.expected_in_float = _eager_in_float(case)
        live.append(case)
    work = Path(tempfile.mkdtemp(prefix="aotc-coverage-"))
    try:
        _check_group(live, options, results, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [results[c.id] for c in cases]


def eager_outputs(case: Case) -> list[torch.Tensor]:
    """The tensor leaves of the op's eager result on copies of the case's tensors."""
    with torch.no_grad():
        result = case.call([t.clone() for t in case.tensors])
    return [t.clone() for t in pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]


def _eager_in_float(case: Case) -> list[torch.Tensor] | None:
    """Eager on float32 copies of |case|'s bfloat16 tensors, each output cast
    to the dtype eager gives in bfloat16; None when that does not run or
    does not line up."""
    upcast = [t.float() if t.dtype == torch.bfloat16 else t.clone() for t in case.tensors]
    try:
        with torch.no_grad():
            result = case.call(upcast)
    except Exception:
        return None
    outputs = [t for t in pytree.tree_leaves(result) if isinstance(t, torch.Tensor)]
    expected = case.expected or []
    if len(outputs) != len(expected) or any(
        a.shape != e.shape for a, e in zip(outputs, expected, strict=True)
    ):
        return None
    return [a.to(e.dtype) for a, e in zip(outputs, expected, strict=True)]


def _check_group(
    cases: list[Case], options: ExportOptions, results: dict[CaseId, Result], work: Path
) -> None:
    if not cases:
        return
    failure = _compile_and_run(cases, options, results, work)
    if failure is None:
        return
    status, reason = failure
    if len(cases) == 1:
        results[cases[0].id] = Result(cases[0].id, status, reason, cases[0].description)
        return
    half = len(cases) // 2
    _check_group(cases[:half], options, results, work)
    _check_group(cases[half:], options, results, work)


def _compile_and_run(
    cases: list[Case], options: ExportOptions, results: dict[CaseId, Result], work: Path
) -> tuple[str, str] | None:
    """Compiles and runs |cases| as one package and records each case's
    result; returns (status, reason) instead when the group failed as a whole."""
    from .. import runtime
    from ..build.builder import BuildError
    from ..build.progress import Progress
    from ..codegen.cpp.ops_printer import CodegenError
    from ..export import compile_exported
    from ..frontend import FrontendError, capture_module
    from ..lowering import UnsupportedOpError

    inputs = flat_inputs(cases)
    try:
        exported = capture_module(OneOpModule(cases).eval(), inputs, options, name="op")
    except FrontendError as e:
        captured = e.__cause__ is None  # torch.export's own failure is the cause
        return (UNSUPPORTED if captured else NOT_EXPORTABLE), _reason(e)
    except Exception as e:
        return FAIL, "compiler error: " + _reason(e)
    missing = _unsupported_ops(exported.program, cases)
    if missing:
        for case in cases:
            if case.id in missing:
                reason = f"unsupported operator {missing[case.id]}"
                results[case.id] = Result(case.id, UNSUPPORTED, reason, case.description)
        _check_group([c for c in cases if c.id not in missing], options, results, work)
        return None
    path = Path(tempfile.mkstemp(suffix=".pt2", dir=work)[1])
    try:
        compile_exported(exported, path, Progress(quiet=True))
    except (UnsupportedOpError, CodegenError) as e:
        return UNSUPPORTED, _reason(e)
    except BuildError as e:
        return FAIL, "C++ build failed: " + (_first_error(e.log) or _reason(e))
    except Exception as e:
        if isinstance(e.__cause__, NotImplementedError):
            return UNSUPPORTED, _reason(e)
        return FAIL, "compiler error: " + _reason(e)
    try:
        model = runtime.load(str(path))
        outputs = list(model(*inputs))
    except Exception as e:
        return FAIL, "run failed: " + _reason(e)
    finally:
        path.unlink(missing_ok=True)
    expected_count = sum(len(c.expected or ()) for c in cases)
    if len(outputs) != expected_count:
        return FAIL, f"the package returns {len(outputs)} outputs, eager {expected_count}"
    start = 0
    for case in cases:
        count = len(case.expected or ())
        actual = outputs[start : start + count]
        mismatch = compare(actual, case.expected or [], case)
        if mismatch and case.expected_in_float is not None:
            if not compare(actual, case.expected_in_float, case):
                mismatch = ""
        start += count
        status = FAIL if mismatch else PASS
        results[case.id] = Result(case.id, status, mismatch or "", case.description)
    return None


def compare(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], case: Case) -> str:
    """'' when every output matches eager (dtype, shape, values within the
    case's tolerances, NaNs in the same places), else what differs."""
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        where = f"output {i}: " if len(expected) > 1 else ""
        if a.dtype != e.dtype:
            return f"{where}dtype {a.dtype} != eager {e.dtype}"
        if a.shape != e.shape:
            return f"{where}shape {list(a.shape)} != eager {list(e.shape)}"
        exact = not (e.is_floating_point() or e.is_complex())
        atol, rtol = (0.0, 0.0) if exact else (case.atol, case.rtol)
        try:
            torch.testing.assert_close(a, e, atol=atol, rtol=rtol, equal_nan=True)
        except AssertionError as err:
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            return where + "; ".join(lines[:4])
    return ""


def _unsupported_ops(program: torch.export.ExportedProgram, cases: list[Case]) -> dict[CaseId, str]:
    """Cases whose part of the graph (the nodes their outputs depend on) calls
    an aten op with no lowering, with that op."""
    from ..lowering import build_registry

    registry = build_registry()
    leaves = _user_outputs(program)
    missing: dict[CaseId, str] = {}
    start = 0
    for case in cases:
        count = len(case.expected or ())
        stack = [n for n in leaves[start : start + count] if isinstance(n, torch.fx.Node)]
        start += count
        seen: set[torch.fx.Node] = set()
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            target = node.target
            if isinstance(target, torch._ops.OpOverload) and target not in registry:
                if not _handled_outside_registry(target):
                    missing[case.id] = str(target)
                    break
            stack.extend(node.all_input_nodes)
    return missing


def _user_outputs(program: torch.export.ExportedProgram) -> list[Any]:
    """The graph's outputs that are the module's outputs, in order (an op
    that mutates an input, as batch norm's running stats, adds outputs for
    the mutation before them)."""
    from torch.export.graph_signature import OutputKind

    output = next(n for n in program.graph.nodes if n.op == "output")
    nodes = pytree.tree_leaves(output.args[0])
    specs = program.graph_signature.output_specs
    return [n for n, spec in zip(nodes, specs, strict=True) if spec.kind == OutputKind.USER_OUTPUT]


def _handled_outside_registry(target: Any) -> bool:
    # graph_lowering skips the assertion ops and evaluates the symbolic ones.
    name = str(target)
    return name.startswith(("aten._assert", "aten.sym_", "aten._assert_scalar"))


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error:" in line:
            return line.strip()[:_REASON_LIMIT]
    return ""


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."
