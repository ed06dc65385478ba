"""The compile cache end to end, in the spirit of test_codecache: counters
after cold and warm exports, every key component missing when it changes,
corruption rebuilt, concurrent exports, `aotc cache`, reproducible packages.

Each test gets its own empty cache (the session's shared one is not used).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aot.build import cached_build
from aot.build.cache import CompileCache
from aot.build.cmake_project import source_tree
from aot.export import export_model
from aot.options import ExportOptions

REPO_ROOT = Path(__file__).resolve().parent.parent
MLP = REPO_ROOT / "examples" / "mlp.py"
CNN = REPO_ROOT / "examples" / "cnn.py"


def _export(model: Path, out: Path, cache: CompileCache | None, **options) -> dict:
    stats = out.with_suffix(".json")
    export_model(model, out, ExportOptions(**options), quiet=True, cache=cache, stats_json=stats)
    return json.loads(stats.read_text())


def _translation_units(package: Path) -> int:
    import packager

    pkg = packager.Package(package)
    (name,) = pkg.models
    src = pkg.layout.model_dir(name) + "src/"
    return sum(1 for n in pkg.index.by_name if n.startswith(src) and n.endswith(".cc"))


def _entries(cache: CompileCache, kind: str) -> list[Path]:
    return [p for p in (cache.root / kind).rglob("*") if p.is_file() and ".tmp" not in p.name]


def test_second_export_compiles_nothing(tmp_path):
    cache = CompileCache(tmp_path / "cache")
    cold = _export(MLP, tmp_path / "a" / "m.pt2", cache)
    units = _translation_units(tmp_path / "a" / "m.pt2")
    assert units >= 2  # model.cc and at least one kernels_<k>.cc
    # Cold: the library and every object miss; each unit compiles, then one link.
    assert (cold["compiles"], cold["cache_hits"], cold["cache_misses"]) == (units + 1, 0, units + 1)
    warm = _export(MLP, tmp_path / "b" / "m.pt2", cache)
    assert (warm["compiles"], warm["cache_hits"], warm["cache_misses"]) == (0, 1, 0)
    assert (tmp_path / "a" / "m.pt2").read_bytes() == (tmp_path / "b" / "m.pt2").read_bytes()
    assert len(_entries(cache, "libraries")) == 1 and len(_entries(cache, "objects")) == units
    assert warm["stages"]["build"] < cold["stages"]["build"]
    assert 0 < warm["torch_export"] < warm["total"]


def test_object_cache_serves_unchanged_units(tmp_path):
    """Moving the model's code down one line changes only model.cc (its
    kernels' error messages name model lines): the library misses, model.cc
    recompiles, every kernel file comes from the object cache. A different
    cache_key_tag misses everything."""
    cache = CompileCache(tmp_path / "cache")
    model = tmp_path / "mlp.py"
    model.write_text(MLP.read_text())
    _export(model, tmp_path / "a" / "m.pt2", cache)
    units = _translation_units(tmp_path / "a" / "m.pt2")
    model.write_text("# one more line\n" + MLP.read_text())
    moved = _export(model, tmp_path / "b" / "m.pt2", cache)
    assert (moved["compiles"], moved["cache_hits"], moved["cache_misses"]) == (2, units - 1, 2)
    tagged = _export(model, tmp_path / "c" / "m.pt2", cache, cache_key_tag="fresh")
    assert (tagged["compiles"], tagged["cache_hits"]) == (units + 1, 0)


def test_corrupt_library_entry_is_rebuilt(tmp_path):
    cache = CompileCache(tmp_path / "cache")
    _export(MLP, tmp_path / "a" / "m.pt2", cache)
    (entry,) = _entries(cache, "libraries")
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # truncated
    again = _export(MLP, tmp_path / "b" / "m.pt2", cache)
    # The library is rebuilt from cached objects: a miss, then only the link.
    assert again["cache_misses"] == 1 and again["compiles"] == 1
    assert (tmp_path / "a" / "m.pt2").read_bytes() == (tmp_path / "b" / "m.pt2").read_bytes()
    (entry,) = _entries(cache, "libraries")
    altered = bytearray(entry.read_bytes())
    altered[-100] ^= 0xFF  # one flipped byte inside model.so
    entry.write_bytes(bytes(altered))
    third = _export(MLP, tmp_path / "c" / "m.pt2", cache)
    assert third["cache_misses"] == 1
    assert (tmp_path / "a" / "m.pt2").read_bytes() == (tmp_path / "c" / "m.pt2").read_bytes()


def test_every_key_component_misses(tmp_path, monkeypatch):
    """library_key changes with each thing that changes the output."""
    options = ExportOptions()
    tree = source_tree({"model.cc": "int x;\n", "kernels_0.cc": "int y;\n"}, options.isa)
    base = cached_build.library_key(tree, options)
    assert cached_build.library_key(dict(tree), options) == base  # deterministic

    def key_with(**changes) -> str:
        return cached_build.library_key(tree, dataclasses.replace(options, **changes))

    changed = {
        "source": cached_build.library_key({**tree, "kernels_0.cc": b"int z;\n"}, options),
        "isa": cached_build.library_key(
            source_tree({"model.cc": "int x;\n"}, "x86-64-v2"),
            dataclasses.replace(options, isa="x86-64-v2"),
        ),
        "dtype": key_with(dtype="bfloat16"),
        "compress": key_with(compress=True),
        "provenance": key_with(provenance=False),
        "tag": key_with(cache_key_tag="deploy-7"),
        "flags": cached_build.library_key(
            {**tree, "CMakeLists.txt": tree["CMakeLists.txt"].replace(b"-O3", b"-O2")}, options
        ),
    }
    real_versions = cached_build.versions
    for package in ("aotc", "torch", "triton"):
        monkeypatch.setattr(
            cached_build, "versions", lambda p=package: {**real_versions(), p: "0.0.0-other"}
        )
        changed[f"{package} version"] = cached_build.library_key(tree, options)
    monkeypatch.setattr(cached_build, "versions", real_versions)
    monkeypatch.setattr(cached_build, "compiler_identity", lambda c: f"{c}\nother 1.0")
    changed["compiler version"] = cached_build.library_key(tree, options)
    monkeypatch.undo()
    monkeypatch.setenv("CXX", "clang++")
    changed["compiler"] = cached_build.library_key(tree, options)
    monkeypatch.delenv("CXX")
    assert cached_build.library_key(tree, options) == base
    for what, key in changed.items():
        assert key != base, what
    assert len(set(changed.values())) == len(changed)
    # build_jobs changes nothing in the output, so not the key.
    assert key_with(build_jobs=7) == base


def test_two_processes_export_at_once(tmp_path):
    """Both succeed, leave one valid library entry, and write identical packages."""
    env = dict(os.environ, AOTC_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO_ROOT))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aot.cli",
                "export",
                str(MLP),
                "-o",
                str(tmp_path / f"{k}" / "m.pt2"),
                "--quiet",
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out
    assert (tmp_path / "0" / "m.pt2").read_bytes() == (tmp_path / "1" / "m.pt2").read_bytes()
    cache = CompileCache(tmp_path / "cache")
    (entry,) = _entries(cache, "libraries")
    assert cache.get("libraries", entry.name) is not None
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]


def test_cli_cache_info_clear_and_stats(tmp_path):
    env = dict(os.environ, AOTC_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO_ROOT))

    def aotc(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "aot.cli", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    stats = tmp_path / "stats.json"
    aotc("export", str(CNN), "-o", str(tmp_path / "cnn.pt2"), "--quiet", "--stats-json", str(stats))
    cold = json.loads(stats.read_text())
    assert cold["cache_misses"] >= 2 and cold["compiles"] >= 2
    assert set(cold["stages"]) >= {"frontend", "lower", "schedule", "codegen", "build", "package"}
    verbose = aotc("export", str(CNN), "-o", str(tmp_path / "cnn2.pt2"), "-v")
    assert "compiles 0, cache_hits 1, cache_misses 0" in verbose
    info = aotc("cache", "info")
    assert str(tmp_path / "cache") in info and "libraries" in info and "objects" in info
    assert "removed" in aotc("cache", "clear")
    assert CompileCache(tmp_path / "cache").info().total_bytes == 0
    bare = aotc(
        "export",
        str(CNN),
        "-o",
        str(tmp_path / "cnn3.pt2"),
        "--quiet",
        "--no-cache",
        "--stats-json",
        str(stats),
    )
    assert bare == "" and json.loads(stats.read_text())["cache_hits"] == 0
    assert CompileCache(tmp_path / "cache").info().total_bytes == 0


def test_cold_exports_are_byte_identical(tmp_path):
    """Reproducible packages: two cold exports (separate empty caches, so
    each really builds) give the same bytes."""
    for k in range(2):
        stats = _export(CNN, tmp_path / f"{k}" / "m.pt2", CompileCache(tmp_path / f"cache{k}"))
        assert stats["cache_hits"] == 0
    assert (tmp_path / "0" / "m.pt2").read_bytes() == (tmp_path / "1" / "m.pt2").read_bytes()


@pytest.mark.parametrize("value", ["0", "off"])
def test_cache_disabled_by_env(monkeypatch, value):
    monkeypatch.setenv("AOTC_CACHE", value)
    assert CompileCache.from_env() is None
