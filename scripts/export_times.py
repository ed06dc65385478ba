#!/usr/bin/env python3
"""Cold and warm export times of each example model (examples/*.py).

Each export runs in a fresh Python process. The cold export starts from an
empty compile cache, so torch's import, torch.export's first call, lowering,
codegen and the C++ build are all counted (targets for this 2-core machine:
mlp <= 10 s, gpt <= 30 s). The warm export repeats it with the cache the cold
one filled: it must run no compiler and spend under 1 s beyond torch.export
itself (DESIGN.md: compile cache). Exit status 1 when a target is missed.

    python scripts/export_times.py [--dtype bfloat16] [--isa x86-64-v3] [mlp gpt ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("mlp", "cnn", "transformer", "gpt")
COLD_TARGETS = {"mlp": 10.0, "gpt": 30.0}  # seconds, cold, on the 2-core dev box
WARM_BEYOND_EXPORT = 1.0  # seconds a warm export may spend beyond torch.export

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from aot.export import export_model
from aot.options import ExportOptions
options = ExportOptions(isa={isa!r}, dtype={dtype!r})
start = time.perf_counter()
export_model(Path({model!r}), Path({output!r}), options, quiet=True, stats_json=Path({stats!r}))
print(json.dumps({{"export_s": time.perf_counter() - start}}))
"""


def export_once(name: str, isa: str, dtype: str | None, directory: Path, cache: Path) -> dict:
    """One export in a fresh process with the compile cache |cache|: its
    time, the process time, the package size and the export's stats."""
    output, stats = directory / f"{name}.pt2", directory / f"{name}.json"
    code = _CHILD.format(
        root=str(REPO_ROOT),
        isa=isa,
        dtype=dtype,
        model=str(REPO_ROOT / "examples" / f"{name}.py"),
        output=str(output),
        stats=str(stats),
    )
    env = dict(os.environ, AOTC_CACHE_DIR=str(cache))
    env.pop("AOTC_CACHE", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}", "process_s": total}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = total
    result["size"] = output.stat().st_size
    result["stats"] = json.loads(stats.read_text())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="*", help=f"default: all of {', '.join(EXAMPLES)}")
    parser.add_argument("--isa", default="x86-64-v3")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    unknown = [e for e in args.examples if e not in EXAMPLES]
    if unknown:
        parser.error(f"unknown example {unknown[0]!r} (choose from {', '.join(EXAMPLES)})")
    args.examples = args.examples or list(EXAMPLES)

    print(
        f"{'example':<12} {'cold s':>7} {'target':>7} {'compiles':>8} | {'warm s':>7} "
        f"{'export':>7} {'beyond':>7} {'compiles':>8} {'package':>9}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="aotc-times-") as tmp:
        for name in args.examples:
            cache = Path(tmp) / f"cache-{name}"
            cold = export_once(name, args.isa, args.dtype, Path(tmp), cache)
            warm = export_once(name, args.isa, args.dtype, Path(tmp), cache)
            bad = next((r for r in (cold, warm) if "error" in r), None)
            if bad is not None:
                failed = True
                print(f"{name:<12} FAILED  {bad['error']}")
                continue
            target = COLD_TARGETS.get(name)
            beyond = warm["stats"]["total"] - warm["stats"]["torch_export"]
            problems = []
            if target is not None and cold["export_s"] > target:
                problems.append("cold over target")
            if warm["stats"]["compiles"] != 0:
                problems.append("warm export compiled")
            if beyond >= WARM_BEYOND_EXPORT:
                problems.append(f"warm export over {WARM_BEYOND_EXPORT:.0f} s beyond torch.export")
            failed |= bool(problems)
            print(
                f"{name:<12} {cold['export_s']:>7.1f} {target or '-':>7} "
                f"{cold['stats']['compiles']:>8} | {warm['export_s']:>7.2f} "
                f"{warm['stats']['torch_export']:>7.2f} {beyond:>7.2f} "
                f"{warm['stats']['compiles']:>8} {warm['size'] / 1024:>8.0f}K"
                + (f"  {'; '.join(problems)}" if problems else "")
            )
    print("export: seconds in torch.export.export; beyond: the rest of the warm export")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
