"""Where memfds are unavailable, the runtime's automatic library loading falls
back to a temp file that it unlinks right after dlopen (docs/SECURITY.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Loads the affine package and runs it once; prints the output's sum.
SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from aot import runtime
    runtime.set_library_path(sys.argv[1])
    mode, temp_dir, package = sys.argv[2], sys.argv[3], sys.argv[4]
    try:
        model = runtime.load(package, library_loading=mode, temp_dir=temp_dir)
    except runtime.AotcError as e:
        print("ERROR", e)
        sys.exit(3)
    y, r = model(torch.ones(4, 8))
    print("OK", float(y.sum()))
    """
)


def _load_with_memfd_refused(native_build, package, mode, temp_dir, log):
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(native_build.fixture_dir / "no_memfd_preload.so")
    env["AOTC_TEST_MEMFD_LOG"] = str(log)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(native_build.runtime_library),
            mode,
            str(temp_dir),
            str(package),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_auto_loading_falls_back_to_temp_file(native_build, fixture_packages, tmp_path):
    temp_dir = tmp_path / "libs"
    temp_dir.mkdir()
    log = tmp_path / "memfd.log"
    result = _load_with_memfd_refused(
        native_build, fixture_packages["affine"], "auto", temp_dir, log
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")
    assert "memfd_create(aotc-model) refused" in log.read_text()  # the shim was really in the way
    assert list(temp_dir.iterdir()) == []  # and the fallback left no file behind


def test_memfd_only_loading_reports_the_failure(native_build, fixture_packages, tmp_path):
    log = tmp_path / "memfd.log"
    result = _load_with_memfd_refused(
        native_build, fixture_packages["affine"], "memfd", tmp_path, log
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "memfd_create failed" in result.stdout
