#!/usr/bin/env python3
"""Operator coverage against PyTorch's OpInfo database (issue 7).

Every OpInfo entry (minus docs/op_exclusions.md), every sample input, in
float32 and bfloat16: wrapped in a one-op module, exported, compiled, run
through the C++ runtime, compared with eager. Writes docs/op_coverage.md and
docs/op_coverage.json (a full run; a run limited with --ops merges its
results into the existing JSON with --update, else only prints).

    python3 scripts/op_coverage.py                      # the full sweep
    python3 scripts/op_coverage.py --ops 'nn.functional.conv*' sum
    python3 scripts/op_coverage.py --ops sort --update  # refresh sort in the report
    python3 scripts/op_coverage.py --families           # the named families only

Needs `pip install expecttest` (torch.testing._internal imports it).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aot.coverage import report  # noqa: E402
from aot.coverage.cases import DTYPES, eager_supports, load_op_db, sample_count  # noqa: E402
from aot.coverage.check import COUNTED, PASS, Result  # noqa: E402
from aot.coverage.sweep import Sweep, Task, order_by_size, pack_tasks  # noqa: E402

DOCS = ROOT / "docs"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ops", nargs="+", metavar="PATTERN", help="OpInfo names (fnmatch patterns)")
    p.add_argument("--families", action="store_true", help="only the named families' ops")
    p.add_argument(
        "--dtypes", default=",".join(DTYPES), help="comma-separated (default: %(default)s)"
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--chunk", type=int, default=48, help="samples compiled together at most")
    p.add_argument("--timeout", type=float, default=600, help="seconds per task before it is split")
    p.add_argument("--update", action="store_true", help="merge a limited run into the reports")
    p.add_argument("--json", type=Path, default=DOCS / "op_coverage.json")
    p.add_argument("--report", type=Path, default=DOCS / "op_coverage.md")
    p.add_argument("--exclusions", type=Path, default=DOCS / "op_exclusions.md")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            sys.exit(f"op_coverage: unknown dtype {d!r} (choose from {', '.join(DTYPES)})")
    exclusions = report.read_exclusions(args.exclusions)
    db = load_op_db()
    unknown = [op for op in exclusions if op not in db]
    if unknown:
        sys.exit(f"op_coverage: {args.exclusions} names ops OpInfo does not have: {unknown}")
    names = sorted(n for n in db if n not in exclusions)
    limited = bool(args.ops or args.families)
    if args.families:
        wanted = set(report.family_ops())
        names = [n for n in names if n in wanted]
    if args.ops:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.ops)]
    if not names:
        sys.exit("op_coverage: no OpInfo entry matches")

    counts: dict[tuple[str, str], int] = {}
    no_eager: dict[str, list[str]] = {}
    for name in names:
        for dtype in dtypes:
            if not eager_supports(db[name], dtype):
                no_eager.setdefault(name, []).append(dtype)
                continue
            counts[(name, dtype)] = sample_count(db[name], dtype)
    tasks = pack_tasks(counts, args.chunk)
    total = sum(len(t.samples) for t in tasks)
    print(f"op_coverage: {len(names)} ops, {total} samples, {len(tasks)} tasks, "
          f"{args.jobs} workers", flush=True)  # fmt: skip

    results: list[Result] = []
    start = time.monotonic()

    def on_results(task: Task, rs: list[Result]) -> None:
        results.extend(rs)
        c = report.totals(results)
        bad = [r for r in rs if r.status in COUNTED and r.status != PASS]
        note = f"  first problem: {bad[0].status}: {bad[0].reason[:120]}" if bad else ""
        passed = sum(r.status == PASS for r in rs)
        print(
            f"[{len(results)}/{total} {time.monotonic() - start:6.0f}s "
            f"{100 * report.pass_rate(c):5.1f}%] {task.label}: {passed}/{len(rs)} pass{note}",
            flush=True,
        )

    Sweep(args.jobs, args.timeout, on_results).run(order_by_size(tasks))

    if limited and args.update and args.json.is_file():
        old = json.loads(args.json.read_text())
        done = {(r.id.op, r.id.dtype) for r in results}
        kept = [r for r in report.from_json(old) if (r.id.op, r.id.dtype) not in done]
        results = kept + results
        no_eager = {**old.get("unsupported_dtypes", {}), **no_eager}
    c = report.totals(results)
    counted = sum(c[s] for s in COUNTED)
    print(f"\nop_coverage: {c[PASS]}/{counted} samples pass ({100 * report.pass_rate(c):.1f}%); "
          + ", ".join(f"{s} {n}" for s, n in sorted(c.items())))  # fmt: skip
    problems = report.family_failures(results)
    named = [op for op in problems if op in {r.id.op for r in results} or not limited]
    print(f"op_coverage: named-family ops with problems: {len(named)}")
    for op in named:
        print(
            f"  {op}: {problems[op][0][:160]}"
            + (f" (+{len(problems[op]) - 1})" if len(problems[op]) > 1 else "")
        )
    if limited and not args.update:
        return 0
    import torch

    meta = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "op_entries": len(db),
        "seconds": round(time.monotonic() - start),
    }
    report.write_reports(args.report, args.json, results, meta, exclusions, no_eager)
    print(f"op_coverage: wrote {args.report} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
