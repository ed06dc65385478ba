"""The .pt2 format: writing, reading, verifying and inspecting packages (no torch)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager import (
    Constant,
    PackageError,
    PackageWriter,
    Sample,
    format_inspection,
    inspect_package,
    list_entries,
    read_package,
    verify_package,
)
from packager.zipreader import ZipIndex
from packager.zipwriter import CENTRAL_SIG, AlignedZipWriter

REPO = Path(__file__).resolve().parents[1]
ROOT = "mlp"
WDIR = f"{ROOT}/data/weights/mlp/"
MDIR = f"{ROOT}/data/aotc/mlp/"


# ---- fixtures -------------------------------------------------------------------------


def model_args(name: str = "mlp", **overrides):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 8)).astype(np.float32)
    args = dict(
        name=name,
        library=b"\x7fELF fake model library",
        inputs=[{"name": "x", "dtype": "float32", "shape": [4, "s0"]}],
        outputs=[{"name": "y", "dtype": "float32", "shape": [4, 16]}],
        target={"device": "cpu", "isa": "x86-64-v3", "arch": None, "min_driver": 0},
        abi={"major": 1, "minor": 0},
        constants=[
            Constant("fc.weight", "float32", (16, 8), w1),
            Constant("fc.bias", "float32", [16], np.zeros(16, np.float32)),
            Constant("emb/table", "bfloat16", [3, 2], bytes(range(12))),
            Constant("steps", "int64", [], np.array(7, np.int64), state=True),
        ],
        kernels=[{"name": "k0", "entry": "k0.cubin", "debug_handle": "k0:0", "data": b"CUBIN"}],
        samples_inputs=[Sample("float32", (4, 8), np.ones((4, 8), np.float32))],
        samples_outputs=[Sample("float32", (4, 16), np.arange(64, dtype=np.float32))],
        files={
            "src/model.cc": "// generated\n",
            "kernel_information.json": json.dumps(
                {
                    "k0:0": {
                        "stack_traces": ['File "/x/model.py", line 12, in forward\n  y = fc(x)'],
                        "post_grad_nodes": ["addmm"],
                        "pre_grad_nodes": ["linear"],
                    }
                }
            ),
        },
        producer={"torch": "2.13.0"},
        metadata={"note": "test"},
    )
    args.update(overrides)
    return args


def write(path: Path, *models, **opts) -> Path:
    with PackageWriter(path, **opts) as w:
        for m in models or (model_args(),):
            w.add_model(**m)
    return path


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    return write(tmp_path / "mlp.pt2")


def rewrite(src: Path, dst: Path, edit=None, add=(), alignment: int = 64) -> Path:
    """Copies a package entry by entry; edit(name, data) returns new data or None to drop."""
    index = ZipIndex(src)
    with open(dst, "wb") as f:
        z = AlignedZipWriter(f, alignment=alignment)
        for e in index.entries:
            data = index.read(e)
            data = edit(e.name, data) if edit else data
            if data is not None:
                z.add(e.name, [data])
        for name, data in add:
            z.add(name, [data])
        z.finish()
    return dst


def edit_manifest(change):
    def edit(name, data):
        if name.endswith("manifest.json"):
            m = json.loads(data)
            change(m)
            return json.dumps(m).encode()
        return data

    return edit


def central_record_offset(path: Path, name: str) -> int:
    data = path.read_bytes()
    encoded = name.encode()
    pos = data.find(struct.pack("<I", CENTRAL_SIG))
    while pos >= 0:
        n_name = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + n_name] == encoded:
            return pos
        pos = data.find(struct.pack("<I", CENTRAL_SIG), pos + 4)
    raise AssertionError(name)


# ---- writing and reading --------------------------------------------------------------


def test_round_trip(pkg: Path) -> None:
    assert verify_package(pkg) == []
    p = read_package(pkg)
    assert p.root == ROOT and list(p.models) == ["mlp"]
    m = p.models["mlp"].manifest
    assert (m["format"], m["format_version"], m["model"], m["library"]) == (
        "aotc",
        1,
        "mlp",
        "model.so",
    )
    assert m["producer"]["torch"] == "2.13.0" and m["producer"]["aotc"] == "0.1.0"
    assert m["inputs"][0]["shape"] == [4, "s0"]
    assert m["metadata"] == {"note": "test"}
    assert p.read(MDIR + "model.so") == b"\x7fELF fake model library"
    assert p.read("archive_format") == b"aotc" and p.read("archive_version") == b"1"
    assert p.read(MDIR + "kernels/k0.cubin") == b"CUBIN"
    assert p.read(MDIR + "src/model.cc") == b"// generated\n"
    w1 = model_args()["constants"][0].data
    assert p.weight("mlp", "fc.weight") == w1.tobytes()
    assert p.weight("mlp", "emb/table") == bytes(range(12))
    assert p.weight("mlp", "steps") == np.array(7, np.int64).tobytes()
    consts = {c["name"]: c for c in m["constants"]}
    assert consts["fc.weight"]["nbytes"] == 512 and consts["steps"]["state"] is True
    assert consts["emb/table"]["entry"] == "emb_table"
    inputs, outputs = p.samples("mlp")
    assert inputs == [("float32", (4, 8), np.ones((4, 8), np.float32).tobytes())]
    assert outputs[0][:2] == ("float32", (4, 16))
    # every entry except the manifest is listed with size and sha256
    names = {e.name for e in p.index.entries}
    assert set(m["entries"]) == {
        n for n in names if n.startswith(f"{ROOT}/data/") and not n.endswith("manifest.json")
    }


def test_alignment_of_every_entry(pkg: Path) -> None:
    entries = list_entries(pkg)
    assert entries and all(e.offset % 64 == 0 for e in entries)
    # NPY headers are padded so that the array data inside them is aligned too
    raw = pkg.read_bytes()
    for e in entries:
        if e.name.endswith(".npy"):
            header_len = 10 + struct.unpack_from("<H", raw, e.offset + 8)[0]
            assert (e.offset + header_len) % 64 == 0


def test_python_zipfile_accepts(pkg: Path) -> None:
    p = read_package(pkg)
    with zipfile.ZipFile(pkg) as z:
        assert z.testzip() is None
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        for i in z.infolist():
            assert z.read(i) == p.read(i.filename)


def unzip_test(path: Path) -> None:
    if shutil.which("unzip") is None:
        pytest.skip("unzip not installed")
    r = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors detected" in r.stdout


def test_unzip_accepts(pkg: Path) -> None:
    unzip_test(pkg)


def test_forced_zip64_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "mlp.pt2", force_zip64=True)
    raw = path.read_bytes()
    assert struct.pack("<I", 0x06064B50) in raw and struct.pack("<I", 0x07064B50) in raw
    assert verify_package(path) == []
    assert all(e.offset % 64 == 0 for e in list_entries(path))
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    assert read_package(path).weight("mlp", "fc.bias") == bytes(64)
    unzip_test(path)


def test_zip64_offsets_past_4gib(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    with open(path, "wb") as f:
        f.seek(5 << 30)  # sparse: the file takes no real space
        z = AlignedZipWriter(f)
        z.add("r/a", [b"hello"])
        z.add("r/b", [b"world" * 10])
        z.finish()
    if os.stat(path).st_blocks * 512 > 64 << 20:
        pytest.skip("filesystem without sparse files")
    index = ZipIndex(path)
    assert [(e.name, e.header_offset >= 5 << 30) for e in index.entries] == [
        ("r/a", True),
        ("r/b", True),
    ]
    assert all(e.data_offset % 64 == 0 for e in index.entries)
    with zipfile.ZipFile(path) as z:
        assert z.read("r/b") == b"world" * 10


def test_zip64_entry_count(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with open(path, "wb") as f:
        z = AlignedZipWriter(f, alignment=1)
        for i in range(0x10000):
            z.add(f"r/{i}", [b""])
        z.finish()
    raw = path.read_bytes()
    assert struct.unpack_from("<H", raw, len(raw) - 12)[0] == 0xFFFF  # EOCD count defers to ZIP64
    assert len(ZipIndex(path).entries) == 0x10000


def test_compression_round_trip(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)
    consts = [
        Constant("zeros", "float32", [1024], np.zeros(1024, np.float32)),
        Constant("noise", "uint8", [4096], noise),
        Constant("zeros.tied", "int32", [1024], bytes(4096)),
    ]
    path = write(tmp_path / "mlp.pt2", model_args(constants=consts), compress=True)
    assert verify_package(path) == []
    p = read_package(path)
    by_name = {c["name"]: c for c in p.models["mlp"].constants}
    assert by_name["zeros"]["compression"] == "zstd"
    assert by_name["zeros"]["entry"] == "zeros.zst"
    assert p.index.by_name[WDIR + "zeros.zst"].size < 4096
    assert by_name["noise"]["compression"] == "none"  # zstd would not make it smaller
    assert by_name["zeros.tied"]["entry"] == "zeros.zst"
    assert p.weight("mlp", "zeros") == p.weight("mlp", "zeros.tied") == bytes(4096)
    assert p.weight("mlp", "noise") == noise.tobytes()


def test_tied_weights_stored_once(tmp_path: Path) -> None:
    w = np.arange(32, dtype=np.float32)
    consts = [
        Constant("embed.weight", "float32", [4, 8], w),
        Constant("lm_head.weight", "float32", [4, 8], w.copy()),
        Constant("other", "float32", [32], w + 1),
        Constant("transposed", "float32", [8, 4], (w + 2).reshape(4, 8).T),
    ]
    path = write(tmp_path / "mlp.pt2", model_args(constants=consts))
    assert verify_package(path) == []
    p = read_package(path)
    entries = [c["entry"] for c in p.models["mlp"].constants]
    assert entries == ["embed.weight", "embed.weight", "other", "transposed"]
    stored = [e.name for e in p.index.entries if e.name.startswith(WDIR)]
    assert stored == [WDIR + "embed.weight", WDIR + "other", WDIR + "transposed"]
    assert p.weight("mlp", "transposed") == (w + 2).reshape(4, 8).T.copy().tobytes()
    assert p.weight("mlp", "lm_head.weight") == w.tobytes()


def test_sanitised_weight_names_stay_distinct(tmp_path: Path) -> None:
    consts = [
        Constant("a/b", "uint8", [1], b"\x01"),
        Constant("a_b", "uint8", [1], b"\x02"),
        Constant("w.zst", "uint8", [1], b"\x03"),
    ]
    path = write(tmp_path / "mlp.pt2", model_args(constants=consts))
    p = read_package(path)
    assert [c["entry"] for c in p.models["mlp"].constants] == ["a_b", "a_b-2", "w.zst_"]
    assert [p.weight("mlp", n) for n in ("a/b", "a_b", "w.zst")] == [b"\x01", b"\x02", b"\x03"]


def test_cuda_model_with_cubin_and_ptx(tmp_path: Path) -> None:
    kernels = [
        {"name": "k0", "entry": "k0.cubin", "debug_handle": "k0:0", "data": b"C", "shared": 0},
        {"name": "k0", "entry": "k0.ptx", "debug_handle": "k0:0", "data": b"P", "shared": 0},
    ]
    target = {"device": "cuda", "isa": None, "arch": "sm_90", "min_driver": 12040}
    path = write(tmp_path / "mlp.pt2", model_args(kernels=kernels, target=target))
    assert verify_package(path) == []
    p = read_package(path)
    info = p.models["mlp"]
    assert info.target["arch"] == "sm_90" and info.kernels[1]["shared"] == 0
    assert [p.read(info.kernel_path(k)) for k in info.kernels] == [b"C", b"P"]


def test_several_models_and_root_from_stem(tmp_path: Path) -> None:
    path = write(tmp_path / "two models.pt2", model_args("enc"), model_args("dec"))
    assert verify_package(path) == []
    p = read_package(path)
    assert p.root == "two_models" and sorted(p.models) == ["dec", "enc"]
    assert p.weight("dec", "fc.bias") == bytes(64)


def test_renamed_file_still_reads(pkg: Path, tmp_path: Path) -> None:
    other = tmp_path / "renamed.pt2"
    shutil.copy(pkg, other)
    assert verify_package(other) == [] and read_package(other).root == ROOT


def test_library_from_path_and_reproducible(tmp_path: Path) -> None:
    lib = tmp_path / "model.so"
    lib.write_bytes(b"library bytes")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a" / "mlp.pt2", model_args(library=lib))
    b = write(tmp_path / "b" / "mlp.pt2", model_args(library=str(lib)))
    assert read_package(a).read(MDIR + "model.so") == b"library bytes"
    assert a.read_bytes() == b.read_bytes()


def test_npy_samples_load_in_numpy(pkg: Path, tmp_path: Path) -> None:
    p = read_package(pkg)
    out = tmp_path / "o.npy"
    out.write_bytes(p.read(f"{ROOT}/data/sample_inputs/mlp/output_0.npy"))
    np.testing.assert_array_equal(np.load(out), np.arange(64, dtype=np.float32).reshape(4, 16))


def test_bfloat16_sample_is_u2(tmp_path: Path) -> None:
    bits = np.array([0x3F80, 0x4000], np.uint16)
    args = model_args(
        inputs=[{"name": "x", "dtype": "bfloat16", "shape": [2]}],
        outputs=[],
        samples_inputs=[Sample("bfloat16", [2], bits)],
        samples_outputs=[],
    )
    path = write(tmp_path / "mlp.pt2", args)
    assert verify_package(path) == []
    p = read_package(path)
    assert p.samples("mlp").inputs == [("bfloat16", (2,), bits.tobytes())]
    npy = p.read(f"{ROOT}/data/sample_inputs/mlp/input_0.npy")
    assert b"'descr': '<u2'" in npy


# ---- atomic writes --------------------------------------------------------------------


def test_atomic_write_keeps_old_file(pkg: Path) -> None:
    before = pkg.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with PackageWriter(pkg) as w:
            w.add_model(**model_args())
            raise RuntimeError("boom")
    with pytest.raises(ValueError, match="dtype"):
        with PackageWriter(pkg) as w:
            w.add_model(**model_args(constants=[Constant("c", "float8", [1], b"x")]))
    assert pkg.read_bytes() == before
    assert sorted(os.listdir(pkg.parent)) == ["mlp.pt2"]


def test_write_error_mid_model_leaves_no_temp(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    def failing_add(self, name, parts):
        if "weights" in name:
            raise Boom
        return real_add(self, name, parts)

    real_add = AlignedZipWriter.add
    AlignedZipWriter.add = failing_add  # type: ignore[method-assign]
    try:
        with pytest.raises(Boom), PackageWriter(tmp_path / "mlp.pt2") as w:
            w.add_model(**model_args())
    finally:
        AlignedZipWriter.add = real_add  # type: ignore[method-assign]
    assert os.listdir(tmp_path) == []


def test_package_without_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one model"), PackageWriter(tmp_path / "m.pt2"):
        pass
    assert os.listdir(tmp_path) == []


def test_uncommitted_writer_cleans_up(tmp_path: Path) -> None:
    w = PackageWriter(tmp_path / "mlp.pt2")
    w.add_model(**model_args())
    assert len(os.listdir(tmp_path)) == 1
    w.abort()
    assert os.listdir(tmp_path) == []


# ---- argument errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"name": "bad/name"}, "name: bad model name"),
        ({"name": "../x"}, "name: bad model name"),
        ({"constants": [Constant("c", "float8", [1], b"x")]}, r"constants\[0\].*unknown dtype"),
        ({"constants": [Constant("c", "float32", [2, 2], b"\0" * 12)]}, "needs 16 bytes"),
        (
            {"constants": [Constant("c", "int8", [1], b"a"), Constant("c", "int8", [1], b"b")]},
            "duplicate name 'c'",
        ),
        ({"constants": [Constant("c", "float32", [2], np.zeros(2))]}, "float64 given"),
        ({"constants": [Constant("c", "float32", [-1], b"")]}, "non-negative"),
        ({"inputs": [{"name": "x", "dtype": "f32", "shape": [1]}]}, r"inputs\[0\].dtype"),
        ({"target": {"device": "tpu", "isa": None, "arch": None, "min_driver": 0}}, "device"),
        ({"abi": {"major": "1", "minor": 0}}, "abi.major"),
        ({"target": {"device": "cuda", "isa": None, "arch": None, "min_driver": 0}}, "arch"),
        (
            {"kernels": [{"name": "k", "entry": "../k", "debug_handle": "k:0", "data": b""}]},
            "unsafe",
        ),
        ({"files": {"manifest.json": b"{}"}}, "reserved"),
        ({"files": {"/etc/passwd": b""}}, "absolute"),
        (
            {"samples_inputs": []} | {"samples_outputs": [Sample("int32", [4, 16], bytes(256))]},
            "dtype int32",
        ),
        ({"metadata": {"x": float("nan")}}, "metadata"),
    ],
)
def test_argument_errors(tmp_path: Path, overrides, match) -> None:
    with pytest.raises(ValueError, match=match), PackageWriter(tmp_path / "m.pt2") as w:
        w.add_model(**model_args(**overrides))
    assert os.listdir(tmp_path) == []


def test_duplicate_model_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate model name 'mlp'"):
        write(tmp_path / "m.pt2", model_args(), model_args())


# ---- verify ---------------------------------------------------------------------------


def test_verify_flipped_weight_byte(pkg: Path) -> None:
    raw = bytearray(pkg.read_bytes())
    offset = next(e.offset for e in list_entries(pkg) if e.name == WDIR + "fc.weight")
    raw[offset + 100] ^= 0xFF
    pkg.write_bytes(raw)
    problems = verify_package(pkg)
    assert any("fc.weight" in p and "CRC-32 mismatch" in p for p in problems)
    assert any("fc.weight" in p and "sha256 mismatch" in p for p in problems)
    with pytest.raises(PackageError, match="CRC"):
        read_package(pkg).weight("mlp", "fc.weight")


def test_verify_crc_mismatch(pkg: Path) -> None:
    name = WDIR + "fc.bias"
    raw = bytearray(pkg.read_bytes())
    central = central_record_offset(pkg, name)
    local = struct.unpack_from("<I", raw, central + 42)[0]
    for field in (central + 16, local + 14):
        raw[field] ^= 0x01
    pkg.write_bytes(raw)
    problems = verify_package(pkg)
    assert problems == [next(p for p in problems if "CRC-32 mismatch" in p)]
    assert "fc.bias" in problems[0]


def test_verify_missing_entry(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", lambda n, d: None if n.endswith("fc.bias") else d)
    problems = verify_package(bad)
    assert any("missing entry" in p and "fc.bias" in p for p in problems)


def test_verify_wrong_archive_format(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", lambda n, d: b"pt2" if n.endswith("format") else d)
    assert any("archive_format" in p and "'pt2'" in p for p in verify_package(bad))
    with pytest.raises(PackageError, match="not an aotc package"):
        read_package(bad)


def test_verify_misaligned_entries(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", alignment=1)
    problems = verify_package(bad)
    assert problems and all("not a multiple of 64" in p for p in problems)
    # the same entries written by Python's zipfile are misaligned too
    other = tmp_path / "zf.pt2"
    with zipfile.ZipFile(pkg) as src, zipfile.ZipFile(other, "w") as dst:
        for i in src.infolist():
            dst.writestr(i.filename, src.read(i))
    assert any("not a multiple of 64" in p for p in verify_package(other))


def test_verify_bad_manifest_types(pkg: Path, tmp_path: Path) -> None:
    def change(m):
        m["constants"][0]["shape"] = "16"
        m["target"]["min_driver"] = "535"
        m["inputs"][0]["dtype"] = "float8"
        m["abi"]["minor"] = None
        m["kernels"][0]["debug_handle"] = 3
        m["entries"][MDIR + "model.so"]["sha256"] = "XYZ"

    bad = rewrite(pkg, tmp_path / "bad.pt2", edit_manifest(change))
    text = "\n".join(verify_package(bad))
    for field in (
        "constants[0].shape",
        "target.min_driver",
        "inputs[0].dtype",
        "abi.minor",
        "kernels[0].debug_handle",
        ".sha256",
    ):
        assert field in text
    with pytest.raises(PackageError, match="bad manifest"):
        read_package(bad)


def test_verify_bad_costs(pkg: Path, tmp_path: Path) -> None:
    record = {"debug_handle": "kernel0:0", "kind": "pointwise", "bytes_read": 8}
    bad_costs = [{**record, "bytes_written": -1, "flops": ""}, "kernel1", {"kind": 3}]
    bad = rewrite(pkg, tmp_path / "bad.pt2", edit_manifest(lambda m: m.update(costs=bad_costs)))
    text = "\n".join(verify_package(bad))
    for field in (
        "costs[0].bytes_written",
        "costs[0].flops",
        "costs[1]: expected an object",
        "costs[2]: missing",
        "costs[2].kind",
    ):
        assert field in text
    # Integers and a dynamic model's expressions are both valid.
    good = [{**record, "bytes_written": "64*s0", "flops": 0}]
    fine = rewrite(pkg, tmp_path / "fine.pt2", edit_manifest(lambda m: m.update(costs=good)))
    assert verify_package(fine) == []
    assert read_package(fine).models["mlp"].manifest["costs"] == good


def test_unknown_format_version_refused(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", edit_manifest(lambda m: m.update(format_version=2)))
    with pytest.raises(PackageError, match="format_version 2 is not supported"):
        read_package(bad)
    assert any("format_version 2" in p for p in verify_package(bad))


def test_verify_stray_and_unsafe_entries(pkg: Path, tmp_path: Path) -> None:
    extra = [(MDIR + "notes.txt", b"x"), (f"{ROOT}/data/../evil", b"x"), (f"{ROOT}/loose", b"")]
    bad = rewrite(pkg, tmp_path / "bad.pt2", add=extra)
    text = "\n".join(verify_package(bad))
    assert "stray entry 'mlp/data/aotc/mlp/notes.txt'" in text
    assert "unsafe name" in text and "stray entry 'mlp/loose'" in text


def test_verify_two_roots(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", add=[("other/x", b"")])
    assert any("one root folder" in p for p in verify_package(bad))


def test_verify_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.pt2"
    path.write_bytes(b"hello world" * 10)
    assert "not a zip file" in verify_package(path)[0]
    with pytest.raises(PackageError):
        read_package(path)


# ---- inspect --------------------------------------------------------------------------


def test_inspect(pkg: Path) -> None:
    d = inspect_package(pkg)
    json.dumps(d)  # JSON-able
    m = d["models"]["mlp"]
    assert m["constants"] == {
        "count": 4,
        "bytes": 512 + 64 + 12 + 8,
        "entries": 4,
        "stored_bytes": 512 + 64 + 12 + 8,
        "compressed": 0,
        "state": 1,
    }
    assert m["kernels"] == [{"name": "k0", "entry": "k0.cubin", "debug_handle": "k0:0", "size": 5}]
    assert m["files"] == ["kernel_information.json", "src/model.cc"]
    text = format_inspection(d)
    assert "x: float32[4, s0]" in text and "k0:0" in text and "addmm" in text
    assert "model.py:12" in text
    assert "mlp/data/weights/mlp/fc.weight" in text


def test_inspect_non_aotc_zip_reports_error(pkg: Path, tmp_path: Path) -> None:
    bad = rewrite(pkg, tmp_path / "bad.pt2", lambda n, d: b"pt2" if n.endswith("format") else d)
    d = inspect_package(bad)
    assert "not an aotc package" in d["error"] and d["entries"]
    assert "error:" in format_inspection(d)


def test_inspect_without_torch_or_numpy(pkg: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
        "import packager\n"
        f"d = packager.inspect_package({str(pkg)!r})\n"
        "print(packager.format_inspection(d))\n"
        f"assert packager.verify_package({str(pkg)!r}) == []\n"
        "assert 'zstandard' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "model mlp" in r.stdout
