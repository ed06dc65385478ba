"""The runtime stands alone: `cmake --install` gives a usable prefix, an external
CMake project finds it with find_package(aotc) and runs a package, and the
pip-installed copy works the same way through `aotc --cmake-prefix-path`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build_consumer(prefix: Path, build_dir: Path) -> Path:
    _run(
        [
            "cmake",
            "-S",
            str(REPO / "examples" / "cpp"),
            "-B",
            str(build_dir),
            "-G",
            "Ninja",
            f"-DCMAKE_PREFIX_PATH={prefix}",
        ]
    )
    _run(["cmake", "--build", str(build_dir)])
    return build_dir / "run_model"


def _expected_affine_sums(package: Path) -> list[float]:
    """Sums of the affine fixture's outputs for run_model's ramp input."""
    import packager

    pkg = packager.read_package(package)
    w = np.frombuffer(pkg.weight("affine", "W"), dtype=np.float32).reshape(8, 16)
    b = np.frombuffer(pkg.weight("affine", "b"), dtype=np.float32)
    x = (0.01 * (np.arange(32) % 97) - 0.3).astype(np.float32).reshape(4, 8)
    y = x @ w + b
    return [float(y.sum()), float(np.maximum(y, 0).sum())]


def _check_consumer_output(stdout: str, expected: list[float]) -> None:
    sums = [float(line.split("sum=")[1]) for line in stdout.splitlines() if "sum=" in line]
    assert len(sums) == len(expected)
    for got, want in zip(sums, expected, strict=True):
        assert abs(got - want) < 1e-3 * max(1.0, abs(want)), (got, want)


def test_cmake_install_alone_and_find_package(native_build, fixture_packages, tmp_path):
    prefix = tmp_path / "prefix"
    _run(["cmake", "--install", str(native_build.build_dir), "--prefix", str(prefix)])
    for rel in [
        "include/aotc/aotc.h",
        "include/aotc/aotc.hpp",
        "include/aotc/model_abi.h",
        "lib/cmake/aotc/aotcConfig.cmake",
        "lib/cmake/aotc/AotcModelLibrary.cmake",
        "bin/aotc-run",
    ]:
        assert (prefix / rel).exists(), rel
    assert list((prefix / "lib").glob("libaotc.so*"))

    exe = _build_consumer(prefix, tmp_path / "consumer")
    out = _run([str(exe), str(fixture_packages["affine"])])
    _check_consumer_output(out.stdout, _expected_affine_sums(fixture_packages["affine"]))


def test_runtime_library_exports_only_the_c_api(native_build):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not installed")
    lib = native_build.runtime_library
    symbols = _run([nm, "-D", "--defined-only", str(lib)]).stdout.split()
    exported = [s for s in symbols if s.startswith("aotc_")]
    others = [
        line
        for line in _run([nm, "-D", "--defined-only", str(lib)]).stdout.splitlines()
        if not line.split()[-1].startswith("aotc_") and " A " not in line
    ]
    assert exported, "no aotc_* symbols exported"
    assert others == [], f"unexpected exports: {others[:10]}"
    needed = _run(["readelf", "-d", str(lib)]).stdout
    assert "libstdc++" not in needed, "libaotc.so must link libstdc++ statically"


def test_model_library_exports_only_the_abi(native_build):
    lib = native_build.fixture_library("affine")
    out = _run(["nm", "-D", "--defined-only", str(lib)]).stdout
    names = sorted(line.split()[-1] for line in out.splitlines() if " A " not in line)
    assert names == sorted(
        [
            "aotc_model_describe",
            "aotc_model_create",
            "aotc_model_plan",
            "aotc_model_run",
            "aotc_model_destroy",
        ]
    )


def test_pip_installed_runtime_with_find_package(fixture_packages, tmp_path):
    aotc = shutil.which("aotc")
    if aotc is None:
        pytest.skip("aotc is not pip-installed (run scripts/setup.sh)")
    prefix = Path(_run([aotc, "--cmake-prefix-path"]).stdout.strip())
    assert (prefix / "lib" / "cmake" / "aotc" / "aotcConfig.cmake").exists(), prefix
    exe = _build_consumer(prefix, tmp_path / "consumer")
    out = _run([str(exe), str(fixture_packages["affine"])])
    _check_consumer_output(out.stdout, _expected_affine_sums(fixture_packages["affine"]))
    assert shutil.which("aotc-run"), "pip install must put aotc-run on PATH"
