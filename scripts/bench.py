#!/usr/bin/env python3
"""Whole models: aotc against eager PyTorch, torch.compile and AOTInductor,
side by side in one run.

For each example (examples/*.py) and each real model it can build (the
Hugging Face models of tests/test_hf_models.py, when transformers is
installed) it measures, in this order and with the same thread count:
- eager: median latency;
- torch.compile (default mode): compile time (the first call) and median;
- AOTInductor (torch._inductor.aoti_compile_and_package + aoti_load_package),
  in a subprocess so that a crash is recorded, not fatal: compile time, load
  time, median, package size;
- aotc: compile time (a fresh build: the compile cache is bypassed), load
  time, median through the C++ runtime, package size.
Every build is cold (no compile cache of either compiler is used). Every
median is taken after warm-up over fresh random inputs, three sets
rotated between calls, and each system's output is checked against eager
first. Prints a table, and writes --json and --chart (a PNG of speedups over
eager per system; needs matplotlib).

    python scripts/bench.py [--quick] [--device cpu] [--json OUT] [--chart OUT.png]

--quick runs the examples only and leaves the cold AOTInductor builds to the
full run. GPU packages are issue 11: --device cuda is refused until then.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aot.options import ExportOptions  # noqa: E402
from aot.testing import AOTCRunnerUtil, median_ms  # noqa: E402

SYSTEMS = ("eager", "compile", "aoti", "aotc")
AOTI_TIMEOUT_S = 900


@dataclass
class Model:
    name: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], tuple[Any, ...]]  # fresh random inputs each call


def examples() -> list[Model]:
    out = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out.append(Model(path.stem, module.get_model, module.get_example_inputs))
    return out


def hf_models() -> list[Model]:
    """The small Hugging Face models the tests check (None without transformers)."""
    try:
        from tests import test_hf_models as hf
    except ImportError as e:
        print(f"(Hugging Face models skipped: {e})", file=sys.stderr)
        return []
    out = []
    for name, (build, names, make_inputs) in hf.MODELS.items():

        def model(build: Callable[[], torch.nn.Module] = build, names: tuple = names):
            torch.manual_seed(0)
            return hf._Keywords(build(), names).eval()

        def inputs(make: Callable = make_inputs) -> tuple[Any, ...]:
            return make(torch.Generator().manual_seed(int(torch.randint(1 << 30, ()))), 2, 16)

        out.append(Model(f"hf_{name}", model, inputs))
    return out


def all_models(quick: bool) -> list[Model]:
    return examples() if quick else examples() + hf_models()


def first_tensor(value: Any) -> torch.Tensor:
    leaves = [v for v in torch.utils._pytree.tree_leaves(value) if isinstance(v, torch.Tensor)]
    return leaves[0]


def same(got: Any, expected: Any) -> None:
    torch.testing.assert_close(first_tensor(got), first_tensor(expected), atol=1e-3, rtol=1e-3)


def bench_eager(model: torch.nn.Module, rotation: list, repeats: int) -> dict[str, Any]:
    return {"median_ms": median_ms(lambda i: model(*rotation[i % 3]), repeats)}


def bench_compile(model: torch.nn.Module, rotation: list, repeats: int) -> dict[str, Any]:
    torch._dynamo.reset()
    fast = torch.compile(model)
    start = time.perf_counter()
    same(fast(*rotation[0]), model(*rotation[0]))
    compile_s = time.perf_counter() - start
    return {
        "compile_s": compile_s,
        "median_ms": median_ms(lambda i: fast(*rotation[i % 3]), repeats),
    }


def bench_aotc(model: torch.nn.Module, rotation: list, repeats: int) -> dict[str, Any]:
    # A unique cache tag: a fresh build, as a user's first export.
    options = ExportOptions(cache_key_tag=f"bench-{uuid.uuid4().hex}")
    start = time.perf_counter()
    path = AOTCRunnerUtil.compile(model, rotation[0], options)
    compile_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        loaded = AOTCRunnerUtil.load(path)
        load_s = time.perf_counter() - start
        same(loaded(*rotation[1]), model(*rotation[1]))
        return {
            "compile_s": compile_s,
            "load_s": load_s,
            "median_ms": median_ms(lambda i: loaded(*rotation[i % 3]), repeats),
            "package_bytes": Path(path).stat().st_size,
        }
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def bench_aoti(name: str, quick: bool, repeats: int, threads: int) -> dict[str, Any]:
    """AOTInductor in a subprocess (this script with --aoti-worker)."""
    cmd = [sys.executable, __file__, "--aoti-worker", name, "--repeats", str(repeats)]
    cmd += ["--threads", str(threads)] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=AOTI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {AOTI_TIMEOUT_S} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {done.returncode}: {tail[0][:200]}"}


def aoti_worker(name: str, quick: bool, repeats: int) -> None:
    """Compiles, loads, checks and times one model with AOTInductor; prints
    one JSON line (or dies, which the parent records)."""
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    (entry,) = [m for m in all_models(quick) if m.name == name]
    model = entry.build().eval()
    rotation = [entry.inputs() for _ in range(3)]
    directory = Path(tempfile.mkdtemp(prefix="aoti-bench-"))
    try:
        with torch.no_grad():
            start = time.perf_counter()
            program = torch.export.export(model, rotation[0])
            path = aoti_compile_and_package(program, package_path=str(directory / "m.pt2"))
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            runner = aoti_load_package(path)
            load_s = time.perf_counter() - start
            same(runner(*rotation[1]), model(*rotation[1]))
            median = median_ms(lambda i: runner(*rotation[i % 3]), repeats)
        size = Path(path).stat().st_size
        record = {"compile_s": compile_s, "load_s": load_s, "median_ms": median}
        print(json.dumps({**record, "package_bytes": size}), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(models: list[Model], quick: bool, repeats: int, threads: int) -> list[dict[str, Any]]:
    rows = []
    for entry in models:
        model = entry.build().eval()
        rotation = [entry.inputs() for _ in range(3)]
        row: dict[str, Any] = {"model": entry.name}
        with torch.no_grad():
            for system, bench in (
                ("eager", bench_eager),
                ("compile", bench_compile),
                ("aotc", bench_aotc),
            ):
                try:
                    row[system] = bench(model, rotation, repeats)
                except Exception as e:  # recorded, not fatal: the table says why
                    row[system] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        row["aoti"] = (
            {"skipped": "--quick leaves cold AOTInductor builds to the full run"}
            if quick
            else bench_aoti(entry.name, quick, repeats, threads)
        )
        print_row(row, flush=True)
        rows.append(row)
    return rows


COLUMNS = (
    ("model", 14),
    ("eager ms", 9),
    ("compile ms", 10),
    ("aoti ms", 9),
    ("aotc ms", 9),
    ("aotc/eager", 10),
    ("aotc/compile", 12),
    ("aotc build s", 12),
    ("aoti build s", 12),
    ("aotc load ms", 12),
    ("aoti load ms", 12),
    ("aotc KiB", 9),
    ("aoti KiB", 9),
)


def print_header() -> None:
    print("  ".join(f"{title:>{width}}" for title, width in COLUMNS))


def _cell(row: dict[str, Any], system: str, key: str, scale: float = 1.0, digits: int = 3) -> str:
    value = row.get(system, {}).get(key)
    if value is None:
        result = row.get(system, {})
        return "error" if "error" in result else "skip" if "skipped" in result else "-"
    return f"{value * scale:.{digits}f}"


def _ratio(row: dict[str, Any], a: str, b: str) -> str:
    x, y = row.get(a, {}).get("median_ms"), row.get(b, {}).get("median_ms")
    return f"{x / y:.2f}" if x and y else "-"


def print_row(row: dict[str, Any], flush: bool = False) -> None:
    cells = [
        row["model"],
        _cell(row, "eager", "median_ms"),
        _cell(row, "compile", "median_ms"),
        _cell(row, "aoti", "median_ms"),
        _cell(row, "aotc", "median_ms"),
        _ratio(row, "aotc", "eager"),
        _ratio(row, "aotc", "compile"),
        _cell(row, "aotc", "compile_s"),
        _cell(row, "aoti", "compile_s"),
        _cell(row, "aotc", "load_s", 1e3),
        _cell(row, "aoti", "load_s", 1e3),
        _cell(row, "aotc", "package_bytes", 1 / 1024, 0),
        _cell(row, "aoti", "package_bytes", 1 / 1024, 0),
    ]
    print("  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)), flush=flush)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Each error, and each distinct reason for skipping, once."""
    out: list[str] = []
    for row in rows:
        for system in SYSTEMS:
            result = row.get(system, {})
            if "error" in result:
                out.append(f"{row['model']} {system}: {result['error']}")
            elif "skipped" in result and f"{system}: {result['skipped']}" not in out:
                out.append(f"{system}: {result['skipped']}")
    return out


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no chart: matplotlib is not installed; pip install matplotlib for {path})")
        return
    systems = [s for s in SYSTEMS if s != "eager"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        speedups = []
        for row in rows:
            e, s = row["eager"].get("median_ms"), row.get(system, {}).get("median_ms")
            speedups.append(e / s if e and s else 0.0)
        ax.bar([i + k * width for i in range(len(rows))], speedups, width, label=system)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels([row["model"] for row in rows], rotation=30, ha="right")
    ax.set_ylabel("speedup over eager (higher is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}")


def environment(threads: int) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main() -> int:
    # Cold builds for everyone: aotc bypasses its cache (bench_aotc), and
    # Inductor (torch.compile, AOTInductor in the worker, which inherits the
    # environment) its FX-graph and kernel caches.
    os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="examples only, no AOTInductor")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--chart", type=Path, help="write a PNG of speedups over eager here")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=0, help="timed calls (default 10, quick 5)")
    parser.add_argument("--aoti-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 10)
    if args.aoti_worker:
        aoti_worker(args.aoti_worker, args.quick, repeats)
        return 0
    if args.device != "cpu":
        parser.error("aotc has no GPU backend yet (issue 11): --device cuda is not supported")
    env = environment(args.threads)
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    print_header()
    rows = run(all_models(args.quick), args.quick, repeats, args.threads)
    for line in notes(rows):
        print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
        print(f"json: {args.json}")
    if args.chart:
        chart(rows, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
