"""Exclusions, the named op families, and the coverage reports.

- docs/op_exclusions.md: the only way an op leaves the denominator. One
  table row per op: | `op` | reason |. Read by read_exclusions().
- docs/op_coverage.md: the report a person reads: the totals, the named
  families, every op with its counts and first failure.
- docs/op_coverage.json: the same results, compact: per op and dtype a
  string of status letters (one per sample, in sample order), each reason
  with the samples it applies to, and the failing samples' descriptions.
  tests/test_op_coverage.py reads it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .cases import CaseId
from .check import (
    COUNTED,
    CRASH,
    EAGER_ERROR,
    FAIL,
    NOT_EXPORTABLE,
    PASS,
    TIMEOUT,
    UNSUPPORTED,
    Result,
)

# The op families named by issue 7 (the compiler's scope), as OpInfo names.
# Every sample of every op here must pass.
FAMILIES: dict[str, tuple[str, ...]] = {
    "pointwise math": (
        "abs", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10",
        "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
        "floor", "ceil", "round", "trunc", "frac", "sign", "reciprocal",
        "add", "sub", "mul", "div.no_rounding_mode", "div.trunc_rounding",
        "div.floor_rounding", "remainder", "fmod", "maximum", "minimum",
        "square", "lerp", "addcmul", "addcdiv", "nn.functional.relu",
    ),
    "comparisons": (
        "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf", "isfinite",
        "logical_not", "logical_and", "logical_or", "logical_xor",
    ),
    "where": ("where",),
    "casts": ("to", "float", "bfloat16", "half", "int", "long", "bool"),
    "reductions": (
        "sum", "mean", "amax", "amin", "argmax", "argmin", "var", "var.unbiased",
        "std", "std.unbiased", "prod", "any", "all",
    ),
    "softmax": ("softmax", "softmax.with_dtype", "log_softmax", "log_softmax.with_dtype"),
    "norms": ("nn.functional.layer_norm", "nn.functional.batch_norm", "nn.functional.group_norm"),
    "views": (
        "view", "reshape", "permute", "transpose", "expand", "slice", "narrow",
        "select", "squeeze", "squeeze.multiple", "unsqueeze", "as_strided", "flatten", "t",
    ),
    "cat/stack/split": ("cat", "stack", "split", "split.list_args", "split_with_sizes", "chunk"),
    "indexing": (
        "__getitem__", "gather", "scatter", "scatter_add", "index_select",
        "nn.functional.embedding", "index_put",
    ),
    "matmul": ("mm", "bmm", "addmm", "baddbmm"),
    "convolution": (
        "nn.functional.conv1d", "nn.functional.conv2d", "nn.functional.conv3d",
        "nn.functional.conv_transpose1d", "nn.functional.conv_transpose2d",
        "nn.functional.conv_transpose3d",
    ),
    "pooling": (
        "nn.functional.max_pool1d", "nn.functional.max_pool2d", "nn.functional.max_pool3d",
        "nn.functional.avg_pool1d", "nn.functional.avg_pool2d", "nn.functional.avg_pool3d",
        "nn.functional.adaptive_avg_pool1d", "nn.functional.adaptive_avg_pool2d",
        "nn.functional.adaptive_avg_pool3d", "nn.functional.adaptive_max_pool1d",
        "nn.functional.adaptive_max_pool2d", "nn.functional.adaptive_max_pool3d",
    ),
    "upsample": (
        "nn.functional.upsample_nearest", "nn.functional.upsample_bilinear",
        "nn.functional.interpolate.nearest", "nn.functional.interpolate.bilinear",
    ),
    "cumsum": ("cumsum",),
    "constant_pad_nd": ("constant_pad_nd", "nn.functional.pad.constant"),
    "creation": ("arange", "full", "zeros", "ones"),
    "clamp": ("clamp", "clamp_min", "clamp_max"),
    "pow/sqrt/rsqrt": ("pow", "sqrt", "rsqrt"),
    "activations": ("erf", "tanh", "sigmoid", "nn.functional.silu", "nn.functional.gelu"),
    "topk/sort": ("topk", "sort"),
}  # fmt: skip

LETTERS = {
    PASS: "p",
    FAIL: "f",
    UNSUPPORTED: "u",
    CRASH: "c",
    TIMEOUT: "t",
    NOT_EXPORTABLE: "x",
    EAGER_ERROR: "e",
}
STATUS_OF = {letter: status for status, letter in LETTERS.items()}

_EXCLUSION_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(.+?)\s*\|\s*$")


def family_ops() -> list[str]:
    return [op for ops in FAMILIES.values() for op in ops]


def read_exclusions(path: Path) -> dict[str, str]:
    """{op: reason} from the table rows of docs/op_exclusions.md; a row with
    an empty reason is an error (every exclusion says why)."""
    out: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        match = _EXCLUSION_ROW.match(line)
        if not match:
            continue
        op, reason = match.group(1), match.group(2).strip()
        if not reason:
            raise ValueError(f"{path}:{number}: exclusion of {op} has no reason")
        if op in out:
            raise ValueError(f"{path}:{number}: {op} is excluded twice")
        out[op] = reason
    return out


# --------------------------------------------------------------------------- #
# Results store: per op, per dtype, a string of status letters                 #
# --------------------------------------------------------------------------- #


def to_json(results: Iterable[Result], meta: Mapping[str, Any]) -> dict[str, Any]:
    ops: dict[str, dict[str, dict[str, Any]]] = {}
    grouped: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        grouped.setdefault((r.id.op, r.id.dtype), []).append(r)
    for (op, dtype), rs in sorted(grouped.items()):
        rs.sort(key=lambda r: r.id.index)
        if [r.id.index for r in rs] != list(range(len(rs))):
            raise ValueError(f"{op} {dtype}: results do not cover samples 0..{len(rs) - 1}")
        reasons: dict[str, list[int]] = {}
        for r in rs:
            if r.status != PASS and r.reason:
                reasons.setdefault(r.reason, []).append(r.id.index)
        entry = {
            "statuses": "".join(LETTERS[r.status] for r in rs),
            "reasons": reasons,  # reason -> the samples it applies to
            "samples": {str(r.id.index): r.description for r in rs if r.status == FAIL},
        }
        ops.setdefault(op, {})[dtype] = entry
    return {"meta": dict(meta), "ops": ops}


def from_json(data: Mapping[str, Any]) -> list[Result]:
    out = []
    for op, by_dtype in data["ops"].items():
        for dtype, entry in by_dtype.items():
            reason_of = {i: text for text, indices in entry["reasons"].items() for i in indices}
            for index, letter in enumerate(entry["statuses"]):
                reason = reason_of.get(index, "")
                sample = entry.get("samples", {}).get(str(index), "")
                out.append(Result(CaseId(op, dtype, index), STATUS_OF[letter], reason, sample))
    return out


# --------------------------------------------------------------------------- #
# Summaries                                                                    #
# --------------------------------------------------------------------------- #


def totals(results: Iterable[Result]) -> Counter[str]:
    return Counter(r.status for r in results)


def pass_rate(counts: Mapping[str, int]) -> float:
    counted = sum(counts.get(s, 0) for s in COUNTED)
    return counts.get(PASS, 0) / counted if counted else 0.0


def family_failures(results: Sequence[Result]) -> dict[str, list[str]]:
    """{op: [what is wrong]} for every family op that has a counted sample
    not passing, or no counted sample at all."""
    by_op: dict[str, list[Result]] = {}
    for r in results:
        by_op.setdefault(r.id.op, []).append(r)
    problems: dict[str, list[str]] = {}
    for op in family_ops():
        rs = by_op.get(op, [])
        if not any(r.status in COUNTED for r in rs):
            problems[op] = ["no sample was checked"]
            continue
        bad = [r for r in rs if r.status in COUNTED and r.status != PASS]
        if bad:
            problems[op] = [f"{r.id}: {r.status}: {r.reason}" for r in bad]
    return problems


def _cell(counts: Counter[str]) -> str:
    """pass/denominator."""
    counted = sum(counts[s] for s in COUNTED)
    if not counted:
        outside = counts[NOT_EXPORTABLE] + counts[EAGER_ERROR]
        return f"– ({outside} outside)" if outside else "–"
    return f"{counts[PASS]}/{counted}"


def _op_cell(counts: Counter[str]) -> str:
    """pass / fail (crashes and timeouts included) / unsupported."""
    counted = sum(counts[s] for s in COUNTED)
    if not counted:
        return _cell(counts)
    failed = counts[FAIL] + counts[CRASH] + counts[TIMEOUT]
    return f"{counts[PASS]} / {failed} / {counts[UNSUPPORTED]}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(
    results: Sequence[Result],
    meta: Mapping[str, Any],
    exclusions: Mapping[str, str],
    unsupported_dtypes: Mapping[str, Sequence[str]],
) -> str:
    dtypes = sorted({r.id.dtype for r in results}, key=lambda d: (d != "float32", d))
    lines = [
        "# Operator coverage against PyTorch's OpInfo database",
        "",
        'Generated by `python3 scripts/op_coverage.py` (docs/ARCHITECTURE.md, "Op coverage").',
        "Do not edit by hand.",
        "",
        f"- Date: {meta.get('date', '?')}; torch {meta.get('torch', '?')}; "
        f"machine: {meta.get('machine', '?')}",
        f"- OpInfo entries: {meta.get('op_entries', '?')}; excluded: {len(exclusions)} "
        "(docs/op_exclusions.md)",
        "- Each sample input of each op, in float32 and bfloat16, is wrapped in a module "
        "calling the op, exported, compiled, run through the C++ runtime and compared "
        "with eager PyTorch using OpInfo's tolerances.",
        "- Denominator: every sample that torch.export captures and eager runs "
        "(pass + fail + unsupported + crash + timeout). Outside it: `not exportable` "
        "(torch.export cannot capture the one-op module) and `eager error`.",
        "",
        "## Totals",
        "",
        "| dtype | denominator | pass | fail | unsupported | crash/timeout | pass rate "
        "| not exportable | eager error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dtype in [*dtypes, "all"]:
        c = totals(r for r in results if dtype in ("all", r.id.dtype))
        counted = sum(c[s] for s in COUNTED)
        lines.append(
            f"| {dtype} | {counted} | {c[PASS]} | {c[FAIL]} | {c[UNSUPPORTED]} "
            f"| {c[CRASH] + c[TIMEOUT]} | {100 * pass_rate(c):.1f}% "
            f"| {c[NOT_EXPORTABLE]} | {c[EAGER_ERROR]} |"
        )
    by_op: dict[str, list[Result]] = {}
    for r in results:
        by_op.setdefault(r.id.op, []).append(r)
    problems = family_failures(results)
    lines += [
        "",
        "## Named families",
        "",
        "Every sample of these ops must pass (issue 7).",
        "",
        "| family | ops passing every sample | samples passing | ops with failures |",
        "|---|---:|---:|---|",
    ]
    for family, ops in FAMILIES.items():
        rs = [r for op in ops for r in by_op.get(op, [])]
        c = totals(rs)
        good = sum(1 for op in ops if op not in problems)
        bad = ", ".join(f"`{op}`" for op in ops if op in problems) or "none"
        lines.append(f"| {family} | {good}/{len(ops)} | {_cell(c)} | {bad} |")
    lines += [
        "",
        "## Every op",
        "",
        "Cells: samples that pass / fail (crashes and timeouts included) / are "
        "unsupported. `–`: eager has no CPU kernel for the dtype, or no sample is in "
        "the denominator (`outside`: not exportable or eager error).",
        "",
        "| op | " + " | ".join(dtypes) + " | first problem |",
        "|---|" + "---:|" * len(dtypes) + "---|",
    ]
    for op in sorted(by_op):
        rs = by_op[op]
        cells = []
        for dtype in dtypes:
            if dtype in unsupported_dtypes.get(op, ()):
                cells.append("– (no eager kernel)")
            else:
                cells.append(_op_cell(totals(r for r in rs if r.id.dtype == dtype)))
        bad = sorted(
            (r for r in rs if r.status != PASS), key=lambda r: (r.status not in COUNTED, r.id)
        )
        first = f"{bad[0].status}: {bad[0].reason}" if bad else ""
        if bad and bad[0].description:
            first += f" (sample {bad[0].id.index}: {bad[0].description})"
        lines.append(f"| `{op}` | " + " | ".join(cells) + f" | {_md(first[:400])} |")
    if exclusions:
        lines += ["", "## Excluded ops", "", "| op | reason |", "|---|---|"]
        lines += [f"| `{op}` | {_md(reason)} |" for op, reason in sorted(exclusions.items())]
    return "\n".join(lines) + "\n"


def write_reports(
    markdown_path: Path,
    json_path: Path,
    results: Sequence[Result],
    meta: Mapping[str, Any],
    exclusions: Mapping[str, str],
    unsupported_dtypes: Mapping[str, Sequence[str]],
) -> None:
    data = to_json(results, meta)
    data["unsupported_dtypes"] = {k: list(v) for k, v in sorted(unsupported_dtypes.items())}
    Path(json_path).write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    Path(markdown_path).write_text(to_markdown(results, meta, exclusions, unsupported_dtypes))
