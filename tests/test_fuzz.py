"""A short libFuzzer run of the archive reader under ASan/UBSan, as CI's smoke
check (scripts/run_fuzzer.sh; long runs are done by hand, see docs/SECURITY.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_archive_fuzzer_short_run():
    if shutil.which("clang++") is None:
        pytest.skip("clang++ is not installed (scripts/setup.sh installs it)")
    seconds = os.environ.get("AOTC_FUZZ_SECONDS", "15")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "run_fuzzer.sh"), seconds],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "no crashes" in output and "total executions" in output, output[-2000:]
