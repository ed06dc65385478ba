"""GPU packages of the examples: Triton kernels compiled offline to cubin +
PTX, and the CUDA wrapper around them (issue 11).

On any machine (CI has no GPU): `aotc export --device cuda --arch sm_90`
builds a package whose cubins are sm_90 ELF images with their PTX, listed in
the manifest and loaded by the library's create(). With a GPU: the examples
in float32, bfloat16 and float16 run through the C++ runtime on the GPU and
match eager on the same GPU.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

import packager
from aot import runtime
from aot.cli import main
from aot.export import export_model
from aot.frontend.loader import load_model_file
from aot.options import ExportOptions
from aot.testing import AOTCRunnerUtil, assert_close_to_eager

# Triton compiles in worker processes: this process never imports it.
if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["mlp", "cnn", "transformer", "gpt"]
ELF_MACHINE_CUDA = 190
HAS_GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")


def cubin_arch(image: bytes) -> int:
    """The SM number a CUDA ELF image is for (90 for sm_90/sm_90a)."""
    assert image[:4] == b"\x7fELF", "not an ELF image"
    assert struct.unpack_from("<H", image, 18)[0] == ELF_MACHINE_CUDA, "not a CUDA ELF"
    flags = struct.unpack_from("<I", image, 48)[0]
    abi_version = image[8]
    # ELF ABI version 7 keeps the SM in the low byte of e_flags; version 8
    # (sm_100 and newer) one byte up.
    return flags & 0xFF if abi_version < 8 else (flags >> 8) & 0xFF


@pytest.fixture(scope="module")
def sm90_packages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sm90")
    options = ExportOptions(device="cuda", arch="sm_90")
    return {
        name: export_model(
            REPO / "examples" / f"{name}.py", out / f"{name}.pt2", options, quiet=True
        )
        for name in EXAMPLES
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_sm90_package_built_without_gpu(sm90_packages, name):
    path = sm90_packages[name]
    assert packager.verify_package(path) == []
    pkg = packager.read_package(path)
    model = next(iter(pkg.models.values()))
    target = model.manifest["target"]
    assert target["device"] == "cuda" and target["arch"] == "sm_90"
    assert target["min_driver"] >= 12000
    kernels = model.kernels
    cubins = [k for k in kernels if k["entry"].endswith(".cubin")]
    ptxs = [k for k in kernels if k["entry"].endswith(".ptx")]
    assert cubins and len(cubins) == len(ptxs)
    for k in cubins:
        assert cubin_arch(pkg.read(model.kernel_path(k))) == 90, k["entry"]
        assert re.fullmatch(r"\w+:\d+", k["debug_handle"])
    for k in ptxs:
        ptx = pkg.read(model.kernel_path(k)).decode()
        assert re.search(r"^\.target sm_90a?$", ptx, re.M), k["entry"]
        assert f".entry {k['launch']['symbol']}(" in ptx
    # Both variants of every kernel ([Note: Triton variants]).
    names = {k["name"] for k in cubins}
    stems = {n.rsplit(".", 1)[0] for n in names}
    assert names == {f"{s}.{v}" for s in stems for v in ("aligned", "generic")}
    # The host library is there and says it is a CUDA model.
    library = pkg.read(model.library_path)
    assert library[:4] == b"\x7fELF" and b"cuda:sm_90" in library


@pytest.mark.skipif(HAS_GPU, reason="this host has a GPU")
def test_sm90_package_without_driver_is_refused(sm90_packages):
    with pytest.raises(runtime.AotcError, match="no CUDA driver found"):
        runtime.load(sm90_packages["mlp"], device="cuda")


def test_cuda_export_needs_arch_without_gpu(tmp_path, capsys):
    if HAS_GPU:
        pytest.skip("this host has a GPU to read the arch from")
    out = tmp_path / "m.pt2"
    assert main(["export", str(REPO / "examples" / "mlp.py"), "-o", str(out), "--device", "cuda"])
    assert "--device cuda needs --arch" in capsys.readouterr().err
    assert not out.exists()


def test_cuda_export_through_the_cli(tmp_path):
    out = tmp_path / "mlp.pt2"
    argv = ["export", str(REPO / "examples" / "mlp.py"), "-o", str(out), "--quiet"]
    assert main([*argv, "--device", "cuda", "--arch", "sm_80"]) == 0
    pkg = packager.read_package(out)
    model = next(iter(pkg.models.values()))
    assert model.manifest["target"]["arch"] == "sm_80"
    cubin = next(k for k in model.kernels if k["entry"].endswith(".cubin"))
    assert cubin_arch(pkg.read(model.kernel_path(cubin))) == 80


# --------------------------------------------------------------------------- #
# On a GPU                                                                     #
# --------------------------------------------------------------------------- #

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@needs_gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_on_gpu_matches_eager(name, dtype, tmp_path):
    major, minor = torch.cuda.get_device_capability()
    options = ExportOptions(device="cuda", arch=f"sm_{major}{minor}")
    loaded = load_model_file(REPO / "examples" / f"{name}.py", options)
    module = loaded.module.to(DTYPES[dtype]).eval().cuda()

    def cast(t: torch.Tensor) -> torch.Tensor:
        t = t.cuda()
        return t.to(DTYPES[dtype]) if t.is_floating_point() else t

    def fresh(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape) if t.is_floating_point() else t

    trials = [tuple(cast(t) for t in loaded.example_inputs)]
    trials.append(tuple(cast(fresh(t)) for t in loaded.example_inputs))
    with torch.no_grad():
        expected = [module(*args) for args in trials]
    actual = AOTCRunnerUtil.run_multiple(module, trials, options)
    # float16 through four layers: eager's cuBLAS reduces in another order
    # than the Triton tiles (allow_fp16_reduced_precision_reduction).
    tolerance = 1e-2 if dtype == "float16" else None
    for a, e in zip(actual, expected, strict=True):
        assert_close_to_eager(a, e, tolerance, tolerance)
    shutil.rmtree(tmp_path, ignore_errors=True)


@needs_gpu
@pytest.mark.parametrize("name", ["mlp", "gpt"])  # gpt's embedding has index checks
def test_runs_replay_from_a_cuda_graph(name, tmp_path):
    """[Note: graph capture]: a run captured on torch's stream replays with
    new input values in place."""
    major, minor = torch.cuda.get_device_capability()
    options = ExportOptions(device="cuda", arch=f"sm_{major}{minor}")
    package = export_model(REPO / "examples" / f"{name}.py", tmp_path / "m.pt2", options, True)
    model = runtime.load(package, device="cuda")
    eager = load_model_file(REPO / "examples" / f"{name}.py", options).module.cuda()
    example = load_model_file(REPO / "examples" / f"{name}.py", options).example_inputs[0].cuda()
    x = example.clone()
    with torch.no_grad():
        out = torch.empty_like(eager(x))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        model.run([x], outputs=[out])  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model.run([x], outputs=[out])
    for _ in range(3):
        if x.is_floating_point():
            x.copy_(torch.randn_like(x))
        else:
            x.copy_(torch.randint_like(x, 0, int(example.max()) + 1))
        graph.replay()
        torch.cuda.synchronize()
        with torch.no_grad():
            assert_close_to_eager(out, eager(x), None, None)
