"""aot.runtime: the ctypes binding over the C API, run against the built libaotc.so
and the fixture packages (tests/fixture_packages.py).

Error cases check the runtime's messages verbatim: Python and C++ users must see
the same text. Cases that could crash a careless binding also run in a
subprocess, which must survive them all.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fixture_packages as fp  # noqa: E402  (tests/ is on sys.path)

from aot import runtime  # noqa: E402
from aot.runtime import AotcError, TensorSpec  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- #
# Helpers: packages damaged on purpose                                         #
# --------------------------------------------------------------------------- #


def _central_records(data: bytes | bytearray, start: int):
    """(record offset, name) of each central directory record from |start|."""
    pos = start
    while data[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        yield pos, bytes(data[pos + 46 : pos + 46 + name_len]).decode()
        pos += 46 + name_len + extra_len + comment_len


def _find(package: Path, suffix: str) -> tuple[zipfile.ZipInfo, int]:
    with zipfile.ZipFile(package) as z:
        matches = [i for i in z.infolist() if i.filename.endswith(suffix)]
        assert len(matches) == 1, f"{suffix!r}: {[i.filename for i in matches]}"
        return matches[0], z.start_dir


def rename_entry(package: Path, suffix: str, new_name: str, out: Path) -> Path:
    """|package| with the entry ending in |suffix| renamed (same length) in both
    its local header and its central directory record."""
    data = bytearray(package.read_bytes())
    info, start_dir = _find(package, suffix)
    assert len(new_name) == len(info.filename)
    new = new_name.encode()
    local = info.header_offset
    data[local + 30 : local + 30 + len(new)] = new
    for pos, name in list(_central_records(data, start_dir)):
        if name == info.filename:
            data[pos + 46 : pos + 46 + len(new)] = new
    out.write_bytes(bytes(data))
    return out


def replace_entry(package: Path, suffix: str, content: bytes, out: Path) -> Path:
    """|package| with the data of the entry ending in |suffix| replaced by
    |content| (same size), CRC-32 updated so only the content is wrong."""
    data = bytearray(package.read_bytes())
    info, start_dir = _find(package, suffix)
    assert len(content) == info.file_size
    local = info.header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    begin = local + 30 + name_len + extra_len
    data[begin : begin + len(content)] = content
    crc = zlib.crc32(content)
    struct.pack_into("<I", data, local + 14, crc)
    for pos, name in list(_central_records(data, start_dir)):
        if name == info.filename:
            struct.pack_into("<I", data, pos + 16, crc)
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def damaged(fixture_packages, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (package path, the entry it damages or "")."""
    d = tmp_path_factory.mktemp("damaged")
    affine = Path(fixture_packages["affine"])
    out: dict[str, tuple[Path, str]] = {}
    raw = affine.read_bytes()
    (d / "truncated.pt2").write_bytes(raw[: len(raw) // 2])
    out["truncated"] = (d / "truncated.pt2", "")
    entry = fp.corrupt_entry(affine, "data/weights/affine/W", d / "weight.pt2")
    out["weight"] = (d / "weight.pt2", entry)
    entry = fp.corrupt_entry(affine, "model.so", d / "library.pt2")
    out["library"] = (d / "library.pt2", entry)
    info, _ = _find(affine, "sample_inputs/affine/input_0.npy")
    slip = info.filename.replace("data/sample_inputs", "../../sample_input")
    out["zip_slip"] = (rename_entry(affine, "input_0.npy", slip, d / "slip.pt2"), slip)
    fmt = replace_entry(affine, "/archive_format", b"pt2\n", d / "format.pt2")
    out["archive_format"] = (fmt, "")
    return out


@pytest.fixture(scope="module")
def affine(fixture_packages):
    with runtime.load(fixture_packages["affine"]) as m:
        yield m


@pytest.fixture(scope="module")
def dynamic(fixture_packages):
    with runtime.load(fixture_packages["dynamic"]) as m:
        yield m


def affine_x(seed: int = 0):
    return torch.from_numpy(fp.affine_input(seed))


def affine_expected(x):
    y, r = fp.affine_reference(x.contiguous().numpy())
    return torch.from_numpy(y), torch.from_numpy(r)


# --------------------------------------------------------------------------- #
# Specs, metadata, results                                                     #
# --------------------------------------------------------------------------- #


def test_specs_and_metadata(affine):
    assert affine.name == "affine"
    assert affine.device == "cpu"
    assert affine.input_specs == [
        TensorSpec("x", "float32", (4, 8), False, ((4, 4), (8, 8))),
    ]
    assert [(s.name, s.dtype, s.shape) for s in affine.output_specs] == [
        ("y", "float32", (4, 16)),
        ("r", "float32", (4, 16)),
    ]
    assert affine.input_specs[0].torch_dtype is torch.float32
    assert not affine.input_specs[0].is_dynamic
    assert affine.metadata["model"] == "affine"
    assert affine.metadata["metadata"] == {"fixture": "affine"}
    assert affine.constant_names == ["W", "b"]
    assert "affine" in repr(affine) and "x: float32[4, 8]" in repr(affine)


def test_dynamic_specs(dynamic):
    x, y = dynamic.input_specs
    assert x.shape == ("s0", 8) and y.shape == ("2*s0", 8)
    assert x.is_dynamic
    assert x.ranges[0] == (2, 64)
    assert dynamic.output_specs[0].shape == ("2*s0", 8)


def test_mutated_flag(fixture_packages):
    with runtime.load(fixture_packages["mutating"]) as m:
        assert m.input_specs[0].mutated
        assert not m.output_specs[0].mutated


def test_affine_exact(affine):
    for seed in range(3):
        x = affine_x(seed)
        y, r = affine(x)
        ey, er = affine_expected(x)
        assert torch.equal(y, ey) and torch.equal(r, er)


def test_call_always_returns_a_tuple(fixture_packages):
    with runtime.load(fixture_packages["mutating"]) as m:
        out = m(torch.zeros(16))
        assert isinstance(out, tuple) and len(out) == 1


def test_dynamic_run_and_plan(dynamic):
    for s0 in (2, 3, 17):
        x = torch.randn(s0, 8)
        y = torch.randn(2 * s0, 8)
        (z,) = dynamic(x, y)
        assert z.shape == (2 * s0, 8)
        assert torch.equal(z, torch.from_numpy(fp.dynamic_reference(x.numpy(), y.numpy())))
    assert dynamic.plan([(3, 8), (6, 8)]) == [(6, 8)]


def test_dynamic_errors(dynamic):
    with pytest.raises(AotcError) as e:
        dynamic.plan([(3, 8), (5, 8)])
    assert e.value.code == "INVALID_ARGUMENT"
    assert str(e.value) == "model 'dynamic': input 1 \"y\" dim 0: expected 2*s0 = 6, got 5"
    with pytest.raises(AotcError, match=r"input 1 \"y\" dim 0: expected 2\*s0 = 6, got 5"):
        dynamic(torch.zeros(3, 8), torch.zeros(5, 8))
    with pytest.raises(AotcError, match=r"input 0 \"x\" dim 0 \(s0\): 1 is outside \[2, 64\]"):
        dynamic(torch.zeros(1, 8), torch.zeros(2, 8))
    # plan() takes no ranks in C: the binding checks them.
    with pytest.raises(AotcError, match=r'input 0 "x": expected 2 dims, got 3'):
        dynamic.plan([(3, 8, 1), (6, 8)])


def test_mlp_demo_matches_reference(fixture_packages):
    with runtime.load(fixture_packages["mlp_demo"]) as m:
        x = torch.randn(5, 8)
        (out,) = m(x)
        expected = fp.mlp_reference(x.numpy(), fp.mlp_weights())
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- #
# Zero copy                                                                    #
# --------------------------------------------------------------------------- #


def test_outputs_are_the_tensors_the_binding_allocated(affine, monkeypatch):
    made = []
    real_empty = torch.empty

    def empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        made.append(t)
        return t

    monkeypatch.setattr(torch, "empty", empty)
    y, r = affine(affine_x())
    assert [t.data_ptr() for t in made] == [y.data_ptr(), r.data_ptr()]
    assert y.is_contiguous() and r.is_contiguous()


def test_run_into_caller_outputs(affine):
    y = torch.full((4, 16), float("nan"))
    r = torch.full((4, 16), float("nan"))
    pointers = (y.data_ptr(), r.data_ptr())
    out = affine.run([affine_x()], outputs=[y, r])
    assert out[0] is y and out[1] is r
    assert (y.data_ptr(), r.data_ptr()) == pointers
    ey, er = affine_expected(affine_x())
    assert torch.equal(y, ey) and torch.equal(r, er)


def test_mutated_input_is_written_in_place(fixture_packages):
    with runtime.load(fixture_packages["mutating"]) as m:
        x = torch.arange(16, dtype=torch.float32)
        pointer = x.data_ptr()
        (out,) = m(x)
        assert x.data_ptr() == pointer
        assert torch.equal(x, torch.arange(16, dtype=torch.float32) + 1)
        assert torch.equal(out, x * 2)
        # A strided view: the runtime copies it in and writes the result back.
        base = torch.zeros(32)
        (out,) = m(base[::2])
        assert torch.equal(base[::2], torch.ones(16))
        assert torch.equal(base[1::2], torch.zeros(16))
        assert torch.equal(out, torch.full((16,), 2.0))


def test_non_contiguous_input_works(affine):
    x = affine_x(1)
    xt = x.t().contiguous().t()  # same values, column-major strides
    assert not xt.is_contiguous()
    y, r = affine(xt)
    ey, er = affine_expected(x)
    assert torch.equal(y, ey) and torch.equal(r, er)
    # A slice with a storage offset and a row stride.
    big = torch.zeros(6, 10)
    big[1:5, 2:10] = x
    y, _ = affine(big[1:5, 2:10])
    assert torch.equal(y, ey)


# --------------------------------------------------------------------------- #
# Bad inputs: AotcError with the runtime's message                             #
# --------------------------------------------------------------------------- #


def test_wrong_dtype(affine):
    with pytest.raises(AotcError) as e:
        affine(affine_x().double())
    assert e.value.code == "INVALID_ARGUMENT"
    assert str(e.value) == 'input 0 "x": expected float32[4, 8], got float64[4, 8]'


def test_wrong_shape(affine):
    with pytest.raises(AotcError) as e:
        affine(torch.zeros(4, 9))
    assert e.value.code == "INVALID_ARGUMENT"
    assert e.value.code_value == 16
    assert str(e.value) == 'input 0 "x": expected float32[4, 8], got float32[4, 9]'
    assert e.value.message == str(e.value)


def test_wrong_shape_and_dtype_reports_the_real_dtype(affine):
    with pytest.raises(AotcError) as e:
        affine(torch.zeros(4, 9, dtype=torch.float64))
    assert str(e.value) == 'input 0 "x": expected float32[4, 8], got float64[4, 9]'


def test_wrong_rank(affine):
    with pytest.raises(AotcError) as e:
        affine(torch.zeros(4, 8, 1))
    assert str(e.value) == 'input 0 "x": expected float32[4, 8], got float32[4, 8, 1]'


def test_wrong_number_of_inputs(affine):
    with pytest.raises(AotcError) as e:
        affine(affine_x(), affine_x())
    assert e.value.code == "INVALID_ARGUMENT"
    assert str(e.value) == "model 'affine' takes 1 input (x), got 2"
    with pytest.raises(AotcError, match=r"takes 1 input \(x\), got 0"):
        affine()


def test_non_tensor_input(affine):
    with pytest.raises(TypeError, match=r'input 0 "x": expected a torch.Tensor, got list'):
        affine([[1.0] * 8] * 4)
    with pytest.raises(TypeError, match=r"input 1: expected a torch.Tensor, got int"):
        affine(affine_x(), 3)


def test_dtype_aotc_cannot_name(affine):
    with pytest.raises(AotcError) as e:
        affine(torch.zeros(4, 8, dtype=torch.complex64))
    assert e.value.code == "UNSUPPORTED"
    assert str(e.value).startswith('input 0 "x": dtype complex64 is not supported by aotc')


def test_rank_above_max(affine):
    with pytest.raises(AotcError, match=r'input 0 "x": rank 17 exceeds the maximum of 16'):
        affine(torch.zeros([1] * 17))


def test_device_aotc_cannot_name(affine):
    with pytest.raises(AotcError) as e:
        affine(torch.zeros(4, 8, device="meta"))
    assert e.value.code == "UNSUPPORTED"
    assert str(e.value) == 'input 0 "x": tensors on meta are not supported (cpu, cuda)'


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_into_a_cpu_model(affine):
    """Passed through as a CUDA view: the runtime names the mismatch."""
    with pytest.raises(AotcError) as e:
        affine(affine_x().cuda())
    assert str(e.value) == 'input 0 "x": expected a tensor on cpu, got cuda:0'


def test_bad_outputs(affine):
    x = affine_x()
    with pytest.raises(AotcError) as e:
        affine.run([x], outputs=[torch.empty(4, 16), torch.empty(4, 15)])
    assert str(e.value) == 'output 1 "r": expected float32[4, 16], got float32[4, 15]'
    with pytest.raises(AotcError, match=r'output 0 "y": output memory must be contiguous'):
        affine.run([x], outputs=[torch.empty(16, 4).t(), torch.empty(4, 16)])
    with pytest.raises(AotcError, match=r"model 'affine' has 2 outputs, 1 were given"):
        affine.run([x], outputs=[torch.empty(4, 16)])


def test_kernel_error_is_an_error(fixture_packages):
    with runtime.load(fixture_packages["kernel_error"]) as m:
        (out,) = m(torch.tensor([0, 3, 1, 2, 3, 0]))
        assert torch.equal(out, torch.from_numpy(fp.KERNEL_ERROR_TABLE[[0, 3, 1, 2, 3, 0]]))
        with pytest.raises(AotcError) as e:
            m(torch.tensor([0, 1, 2, 3, 4, 0]))
        assert e.value.code == "OUT_OF_RANGE"
        assert "index 4 out of range [0, 4)" in str(e.value)
        (out,) = m(torch.tensor([3, 3, 3, 3, 3, 3]))  # still usable
        assert out[0, 0].item() == 24.0


# --------------------------------------------------------------------------- #
# Loading errors                                                               #
# --------------------------------------------------------------------------- #


def _has_cuda_driver() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_has_cuda_driver(), reason="this host has a CUDA driver")
def test_cuda_on_a_cpu_only_host(fixture_packages):
    gpu_target = {"device": "cuda", "isa": None, "arch": "sm_90", "min_driver": 0}
    pkg = fixture_packages.build_variant("affine", "affine_cuda", target=gpu_target)
    with pytest.raises(AotcError) as e:
        runtime.load(pkg, device="cuda")
    assert e.value.code == "DEVICE_UNAVAILABLE"
    assert "no CUDA driver found" in str(e.value)
    # A CPU package asked to run on CUDA names both.
    with pytest.raises(AotcError, match="built for cpu and cannot run on cuda:0"):
        runtime.load(fixture_packages["affine"], device="cuda")


def test_unknown_device(fixture_packages):
    with pytest.raises(AotcError, match=r"unknown device 'tpu' \(expected cpu, cuda or cuda:N\)"):
        runtime.load(fixture_packages["affine"], device="tpu")


def test_unknown_model_name(fixture_packages):
    with pytest.raises(AotcError) as e:
        runtime.load(fixture_packages["affine"], model_name="nope")
    assert e.value.code == "NOT_FOUND"
    assert str(e.value) == "no model named 'nope' in the package (it holds: affine)"


def test_missing_file(tmp_path):
    with pytest.raises(AotcError) as e:
        runtime.load(tmp_path / "absent.pt2")
    assert e.value.code == "IO_ERROR"
    assert str(tmp_path / "absent.pt2") in str(e.value)


def test_truncated_package(damaged):
    path, _ = damaged["truncated"]
    with pytest.raises(AotcError) as e:
        runtime.load(path)
    assert e.value.code == "CORRUPT_PACKAGE"
    assert str(e.value).startswith(f"{path}: corrupt package: no end of central directory")
    with pytest.raises(AotcError) as e:
        runtime.open_package(path.read_bytes())
    assert str(e.value).startswith("corrupt package: no end of central directory")


def test_flipped_weight_byte(damaged):
    path, entry = damaged["weight"]
    with pytest.raises(AotcError) as e:
        runtime.load(path)
    assert e.value.code == "CORRUPT_PACKAGE"
    assert f"entry '{entry}' fails its sha256 check" in str(e.value)
    # Weight verification is a policy: skipped, the package loads (and is wrong).
    with runtime.load(path, verify_weights=False) as m:
        y, _ = m(affine_x())
        assert not torch.equal(y, affine_expected(affine_x())[0])


def test_corrupted_library(damaged):
    path, entry = damaged["library"]
    assert entry.endswith("/model.so")
    for verify_weights in (True, False):  # code is always verified before dlopen
        with pytest.raises(AotcError) as e:
            runtime.load(path, verify_weights=verify_weights)
        assert e.value.code == "CORRUPT_PACKAGE"
        assert f"entry '{entry}' fails its sha256 check" in str(e.value)


def test_zip_slip_entry_name(damaged):
    path, name = damaged["zip_slip"]
    with pytest.raises(AotcError) as e:
        runtime.load(path)
    assert e.value.code == "CORRUPT_PACKAGE"
    assert str(e.value) == f"{path}: corrupt package: entry '{name}': name contains '..'"


def test_wrong_archive_format(damaged):
    path, _ = damaged["archive_format"]
    with pytest.raises(AotcError) as e:
        runtime.load(path)
    assert e.value.code == "INCOMPATIBLE"
    assert "archive_format is 'pt2' (an AOTInductor package?)" in str(e.value)


@pytest.mark.parametrize("name", ["future_abi", "missing_symbol"])
def test_refused_libraries(fixture_packages, name):
    with pytest.raises(AotcError) as e:
        runtime.load(fixture_packages[name])
    assert e.value.code == "INCOMPATIBLE"
    assert f"loading model '{name}'" in str(e.value)


def test_bad_option_values(fixture_packages):
    with pytest.raises(ValueError, match="library_loading must be one of auto, memfd, tempfile"):
        runtime.load(fixture_packages["affine"], library_loading="mmap")


# --------------------------------------------------------------------------- #
# Packages, loading modes, several models                                      #
# --------------------------------------------------------------------------- #


def test_open_package_from_path_and_bytes(fixture_packages):
    path = fixture_packages["affine"]
    with runtime.open_package(path) as pkg:
        assert pkg.model_names == ["affine"]
        model = pkg.load()
    # The model keeps the package alive.
    y, _ = model(affine_x())
    assert torch.equal(y, affine_expected(affine_x())[0])
    model.close()
    data = Path(path).read_bytes()
    with runtime.load(data) as m, runtime.load(bytearray(data), model_name="affine") as m2:
        assert torch.equal(m(affine_x())[0], m2(affine_x())[0])


@pytest.mark.parametrize("mode", ["auto", "memfd", "tempfile"])
def test_library_loading_modes(fixture_packages, mode, tmp_path):
    with runtime.load(fixture_packages["affine"], library_loading=mode, temp_dir=tmp_path) as m:
        assert torch.equal(m(affine_x())[0], affine_expected(affine_x())[0])
    assert list(tmp_path.iterdir()) == []  # the temp file is unlinked after dlopen


def test_several_models_loaded_at_once(fixture_packages):
    """Distinct model libraries stay distinct while all are loaded (their
    dlopen names must not collide, e.g. a reused /proc/self/fd/N)."""
    names = ["affine", "dynamic", "mutating", "mlp_demo", "stateful", "kernel_error"]
    models = [runtime.load(fixture_packages[n]) for n in names]
    try:
        assert [m.name for m in models] == names
        # The same package twice: two independent models.
        again = runtime.load(fixture_packages["affine"])
        assert torch.equal(again(affine_x())[0], models[0](affine_x())[0])
        again.close()
    finally:
        for m in models:
            m.close()


# --------------------------------------------------------------------------- #
# Constants and state                                                          #
# --------------------------------------------------------------------------- #


def test_update_constants(fixture_packages):
    with runtime.load(fixture_packages["affine"]) as m:
        w = torch.ones(8, 16)
        b = torch.arange(16, dtype=torch.float32)
        m.update_constants({"W": w, "b": b})
        y, _ = m(torch.ones(4, 8))
        assert torch.equal(y, torch.ones(4, 8) @ w + b)
        # Non-contiguous values are made contiguous by the binding.
        m.update_constants({"W": torch.full((16, 8), 0.5).t(), "b": b})
        y, _ = m(torch.ones(4, 8))
        assert torch.equal(y, torch.full((4, 16), 4.0) + b)

        with pytest.raises(
            AotcError, match="update_constants needs a complete set: 'b' is missing"
        ):
            m.update_constants({"W": w})
        with pytest.raises(AotcError) as e:
            m.update_constants({"W": w, "b": b, "c": b})
        assert e.value.code == "NOT_FOUND"
        assert str(e.value) == "update_constants: model 'affine' has no constant 'c'"
        with pytest.raises(
            AotcError, match=r"'W' expects .*float32\[8, 16\], got float64\[8, 16\]"
        ):
            m.update_constants({"W": w.double(), "b": b})
        # A failed update leaves the last good set in place.
        y, _ = m(torch.ones(4, 8))
        assert torch.equal(y, torch.full((4, 16), 4.0) + b)


def test_stateful_model(fixture_packages):
    with runtime.load(fixture_packages["stateful"]) as m:
        assert m.constant_names == ["scale", "counter"]
        initial = torch.from_numpy(fp.STATEFUL_INITIAL)
        (out,) = m(torch.ones(4))
        assert torch.equal(out, initial + 1)
        (out,) = m(torch.ones(4))
        assert torch.equal(out, initial + 2)
        m.update_constants({"scale": torch.full((4,), 2.0)})  # state is not a constant to set
        (out,) = m(torch.ones(4))
        assert torch.equal(out, initial + 4)
    with runtime.load(fixture_packages["stateful"]) as fresh:  # state is per loaded model
        assert torch.equal(fresh(torch.ones(4))[0], initial + 1)


# --------------------------------------------------------------------------- #
# Threads                                                                      #
# --------------------------------------------------------------------------- #


def test_concurrent_runs_overlap(fixture_packages):
    """The barrier fixture's run returns only once 8 runs are inside it at once:
    8 Python threads succeed only if the binding holds no lock (and ctypes
    releases the GIL)."""
    with runtime.load(fixture_packages["barrier"]) as m:
        x = torch.arange(4, dtype=torch.float32)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: m(x)[0], range(8)))
    for out in results:
        assert torch.equal(out, x + 1)


def test_threads_and_num_threads(fixture_packages):
    with runtime.load(fixture_packages["parallel"]) as m:
        x = torch.linspace(-8, 8, 4096)
        for n in (0, 1, 2, 3):
            y, z = m.run([x], num_threads=n)
            assert torch.equal(y, 3 * x) and torch.equal(z, x + 1)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(20):
                    y, z = m(x)
                    assert torch.equal(y, 3 * x) and torch.equal(z, x + 1)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


# --------------------------------------------------------------------------- #
# Lifetime                                                                     #
# --------------------------------------------------------------------------- #


def test_close_and_context_manager(fixture_packages):
    m = runtime.load(fixture_packages["affine"])
    assert not m.closed
    m.close()
    m.close()  # idempotent
    assert m.closed and "closed" in repr(m)
    with pytest.raises(ValueError, match="model 'affine' is closed"):
        m(affine_x())
    with runtime.load(fixture_packages["affine"]) as m2:
        pass
    assert m2.closed
    pkg = runtime.open_package(fixture_packages["affine"])
    pkg.close()
    with pytest.raises(ValueError, match="the package is closed"):
        pkg.load()


def test_garbage_collection_releases(fixture_packages):
    for _ in range(20):
        m = runtime.load(fixture_packages["affine"])
        m(affine_x())
        del m
        gc.collect()


def test_set_library_path_after_load(affine, tmp_path):
    with pytest.raises(RuntimeError, match="already loaded"):
        runtime.set_library_path(tmp_path / "other.so")
    runtime.set_library_path(runtime.library_path())  # the same path: fine


# --------------------------------------------------------------------------- #
# Subprocesses                                                                 #
# --------------------------------------------------------------------------- #


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_import_does_not_import_torch():
    proc = _python(
        """
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import aot.runtime
        print(aot.runtime.library_path())
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_library_not_found_message():
    proc = _python(
        """
        from aot import runtime
        runtime.set_library_path("/nonexistent/libaotc.so")
        try:
            runtime.load("whatever.pt2")
        except FileNotFoundError as e:
            print(e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "aotc runtime library not found at /nonexistent/libaotc.so; reinstall with pip install ."
    )


def test_process_survives_every_bad_input(native_build, fixture_packages, damaged):
    """Every error case in one child process: each must raise, none may crash it."""
    paths = {
        name: str(fixture_packages[name])
        for name in ("affine", "dynamic", "kernel_error", "mutating")
    }
    paths.update({f"damaged_{k}": str(v[0]) for k, v in damaged.items()})
    script = f"""
        import json, torch
        from aot import runtime
        runtime.set_library_path({str(native_build.runtime_library)!r})
        P = json.loads({json.dumps(json.dumps(paths))})
        seen = []
        def expect(what, fn):
            try:
                fn()
            except (runtime.AotcError, TypeError, ValueError) as e:
                seen.append(what)
                print(what, type(e).__name__, getattr(e, "code", ""), e, flush=True)
            else:
                raise SystemExit(f"{{what}}: no error")
        m = runtime.load(P["affine"])
        x = torch.zeros(4, 8)
        expect("dtype", lambda: m(x.double()))
        expect("shape", lambda: m(torch.zeros(4, 9)))
        expect("rank0", lambda: m(torch.tensor(1.0)))
        expect("count", lambda: m(x, x, x))
        expect("none", lambda: m(None))
        expect("empty", lambda: m(torch.zeros(0, 8)))
        expect("outputs", lambda: m.run([x], outputs=[torch.empty(4, 16), torch.empty(0)]))
        expect("out_dtype", lambda: m.run([x], outputs=[torch.empty(4, 16)] * 2 + [x]))
        expect("plan", lambda: m.plan([(4, 8), (1,)]))
        expect("consts", lambda: m.update_constants({{"W": torch.zeros(1)}}))
        expect("consts_none", lambda: m.update_constants({{}}))
        k = runtime.load(P["kernel_error"])
        expect("kernel", lambda: k(torch.tensor([9, 9, 9, 9, 9, 9])))
        d = runtime.load(P["dynamic"])
        expect("range", lambda: d(torch.zeros(100, 8), torch.zeros(200, 8)))
        expect("relation", lambda: d(torch.zeros(3, 8), torch.zeros(7, 8)))
        for name in sorted(P):
            if name.startswith("damaged_"):
                expect(name, lambda: runtime.load(P[name]))
                expect(name + "_bytes", lambda: runtime.load(open(P[name], "rb").read()))
        expect("model", lambda: runtime.load(P["affine"], model_name="x" * 10000))
        expect("device", lambda: runtime.load(P["affine"], device="cuda:99999999999"))
        expect("bytes", lambda: runtime.load(b"PK\\x05\\x06" + bytes(18)))
        expect("nothing", lambda: runtime.load(b""))
        m.close()
        expect("closed", lambda: m(x))
        print("SURVIVED", len(seen))
    """
    proc = _python(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SURVIVED" in proc.stdout, proc.stdout + proc.stderr
