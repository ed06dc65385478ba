"""scripts/bench.py's plumbing, without timing anything: how it reports
errors and skips, that an AOTInductor crash is recorded rather than fatal,
and that it refuses what it cannot measure yet. (Its figures live in
docs/performance.md; no test asserts a timing.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("aotc_bench_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ROW = {
    "model": "m",
    "eager": {"median_ms": 2.0},
    "compile": {"compile_s": 1.5, "median_ms": 1.0},
    "aotc": {"compile_s": 0.5, "load_s": 0.002, "median_ms": 0.5, "package_bytes": 4096},
    "aoti": {"error": "exit -11: Segmentation fault"},
}


def test_row_shows_ratios_errors_and_skips(bench, capsys) -> None:
    bench.print_row(ROW)
    skipped = {**ROW, "model": "n", "aoti": {"skipped": "--quick"}}
    bench.print_row(skipped)
    first, second = capsys.readouterr().out.splitlines()
    cells = first.split()
    assert cells[:5] == ["m", "2.000", "1.000", "error", "0.500"]
    assert cells[5:7] == ["0.25", "0.50"]  # aotc / eager, aotc / compile
    assert cells[-2:] == ["4", "error"]  # aotc KiB, AOTInductor's failed build
    assert second.split()[3] == "skip"
    notes = bench.notes([ROW, skipped, {**skipped, "model": "o"}])
    assert notes == ["m aoti: exit -11: Segmentation fault", "aoti: --quick"]


def test_aoti_failure_is_recorded(bench) -> None:
    """The AOTInductor worker dies (no such model): the parent records it."""
    result = bench.bench_aoti("no_such_model", quick=True, repeats=1, threads=1)
    assert set(result) == {"error"} and result["error"].startswith("exit ")


def test_cuda_is_refused_until_the_gpu_backend() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no GPU backend yet" in done.stderr
