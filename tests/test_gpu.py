"""A CUDA package built on this CPU-only machine (cubin cross-compiled by nvcc,
loaded by the gpu_add fixture library through the host table), checked here and
run through the real runtime where a GPU is present. Without a GPU the run
tests skip; the package tests still run."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from aot import runtime
from packager import PackageWriter, Sample, verify_package

ELF_MACHINE_CUDA = 190


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


needs_gpu = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def gpu_add_package(native_build, tmp_path_factory) -> Path:
    cubin = native_build.fixture_dir / "gpu" / "add_one.cubin"
    library = native_build.fixture_dir / "gpu" / "gpu_launch_model.so"
    if not cubin.exists():
        pytest.skip("nvcc not found when building: tests/fixtures/gpu/add_one.cubin is absent")
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    out = tmp_path_factory.mktemp("gpu") / "gpu_add.pt2"
    with PackageWriter(out) as w:
        w.add_model(
            name="gpu_add",
            library=library,
            inputs=[{"name": "x", "dtype": "float32", "shape": ["s0"]}],
            outputs=[{"name": "y", "dtype": "float32", "shape": ["s0"]}],
            target={"device": "cuda", "isa": None, "arch": "sm_90", "min_driver": 12000},
            abi={"major": 1, "minor": 0},
            kernels=[
                {
                    "name": "add_one",
                    "entry": "add_one.cubin",
                    "debug_handle": "add_one:0",
                    "data": cubin.read_bytes(),
                }
            ],
            samples_inputs=[Sample("float32", [1000], x)],
            samples_outputs=[Sample("float32", [1000], x + 1)],
        )
    return out


def test_gpu_package_cross_compiled_on_cpu(gpu_add_package):
    assert verify_package(gpu_add_package) == []
    import packager

    pkg = packager.read_package(gpu_add_package)
    cubin = pkg.read(pkg.models["gpu_add"].kernel_path(pkg.models["gpu_add"].kernels[0]))
    assert cubin[:4] == b"\x7fELF"
    assert int.from_bytes(cubin[18:20], "little") == ELF_MACHINE_CUDA
    assert pkg.models["gpu_add"].manifest["target"]["arch"] == "sm_90"


@pytest.mark.skipif(_cuda_available(), reason="this host has a GPU")
def test_gpu_package_without_driver_is_refused(gpu_add_package):
    with pytest.raises(runtime.AotcError, match="no CUDA driver found"):
        runtime.load(gpu_add_package, device="cuda")


@needs_gpu
@pytest.mark.parametrize("n", [1, 1000, 1 << 20])
def test_gpu_add_runs(gpu_add_package, n):
    import torch

    model = runtime.load(gpu_add_package, device="cuda:0")
    x = torch.randn(n, device="cuda")
    (y,) = model(x)
    assert y.device.type == "cuda"
    torch.testing.assert_close(y, x + 1, rtol=0, atol=0)


@needs_gpu
def test_gpu_errors(gpu_add_package):
    import torch

    model = runtime.load(gpu_add_package, device="cuda:0")
    with pytest.raises(
        runtime.AotcError, match=r'input 0 "x": expected a tensor on cuda:0, got cpu'
    ):
        model(torch.randn(8))
    with pytest.raises(runtime.AotcError, match="outside its range"):
        model(torch.randn((1 << 20) + 1, device="cuda"))
    (y,) = model(torch.zeros(4, device="cuda"))  # still usable afterwards
    assert y.tolist() == [1.0] * 4


@needs_gpu
def test_gpu_concurrent_runs_on_own_streams(gpu_add_package):
    import torch

    model = runtime.load(gpu_add_package, device="cuda:0")
    failures: list[str] = []

    def worker(seed: int) -> None:
        stream = torch.cuda.Stream()
        try:
            with torch.cuda.stream(stream):
                for i in range(50):
                    x = torch.full((4096,), float(seed * 100 + i), device="cuda")
                    (y,) = model.run([x], stream=stream)
                    stream.synchronize()
                    if not torch.equal(y, x + 1):
                        failures.append(f"thread {seed} run {i}")
        except Exception as e:  # reported below
            failures.append(f"thread {seed}: {e}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@needs_gpu
def test_aotc_run_tool_on_gpu(native_build, gpu_add_package):
    """aotc-run's checked run uses runtime-allocated (stream-ordered) outputs."""
    import subprocess

    result = subprocess.run(
        [
            str(native_build.binary("aotc-run")),
            str(gpu_add_package),
            "--device",
            "cuda:0",
            "-n",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
