#!/usr/bin/env python3
"""Cold export time of each example model (examples/*.py).

Each export runs in a fresh Python process, so nothing is warm: torch's import,
torch.export's first call, lowering, codegen and the C++ build are all counted.
Prints the time of the export call itself and of the whole process, against the
targets for this 2-core machine (mlp <= 10 s, gpt <= 30 s).

    python scripts/export_times.py [--dtype bfloat16] [--isa x86-64-v3] [mlp gpt ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("mlp", "cnn", "transformer", "gpt")
TARGETS = {"mlp": 10.0, "gpt": 30.0}  # seconds, cold, on the 2-core dev box

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from aot.export import export_model
from aot.options import ExportOptions
options = ExportOptions(isa={isa!r}, dtype={dtype!r})
start = time.perf_counter()
export_model(Path({model!r}), Path({output!r}), options, quiet=True)
print(json.dumps({{"export_s": time.perf_counter() - start}}))
"""


def export_time(name: str, isa: str, dtype: str | None, directory: Path) -> dict:
    code = _CHILD.format(
        root=str(REPO_ROOT),
        isa=isa,
        dtype=dtype,
        model=str(REPO_ROOT / "examples" / f"{name}.py"),
        output=str(directory / f"{name}.pt2"),
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    total = time.perf_counter() - start
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}", "process_s": total}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = total
    result["size"] = (directory / f"{name}.pt2").stat().st_size
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

    print(f"{'example':<12} {'export s':>9} {'process s':>10} {'target s':>9} {'package':>10}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="aotc-times-") as tmp:
        for name in args.examples:
            r = export_time(name, args.isa, args.dtype, Path(tmp))
            target = TARGETS.get(name)
            target_text = f"{target:.0f}" if target else "-"
            if "error" in r:
                failed = True
                process = f"{r['process_s']:>10.1f}"
                print(f"{name:<12} {'FAILED':>9} {process} {target_text:>9}  {r['error']}")
                continue
            over = target is not None and r["export_s"] > target
            failed |= over
            print(
                f"{name:<12} {r['export_s']:>9.1f} {r['process_s']:>10.1f} {target_text:>9} "
                f"{r['size'] / 1024:>8.0f} K{'  OVER TARGET' if over else ''}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
