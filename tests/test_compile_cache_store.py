"""The compile cache's storage layer (aot/build/cache.py): entries, corruption,
concurrency between processes, LRU eviction, configuration. No compiler, no torch."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from aot.build import cache as cache_module
from aot.build.cache import (
    DEFAULT_MAX_BYTES,
    KINDS,
    CacheInfo,
    CompileCache,
    cache_key,
    parse_size,
)

CACHE_PY = Path(cache_module.__file__)
KEY = cache_key("kernel source", "g++ 13.2", "-O3")
DATA = b"\x7fELF" + bytes(range(256)) * 8


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache")


def entry_path(cache: CompileCache, kind: str, key: str) -> Path:
    return cache.root / kind / key[:2] / key


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


# -- keys and sizes ----------------------------------------------------------------


def test_cache_key_is_sha256_hex_and_length_prefixed():
    key = cache_key("ab", "c")
    assert len(key) == 64 and key == key.lower()
    int(key, 16)
    assert key != cache_key("a", "bc")
    assert key != cache_key("abc")
    assert cache_key("ab", b"c") == key  # str parts are their utf-8 bytes
    assert cache_key() != cache_key("")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1234", 1234),
        ("64K", 64 * 1024),
        ("500M", 500 * 1024**2),
        ("2G", 2 * 1024**3),
        ("2g", 2 * 1024**3),
        ("1T", 1024**4),
        ("1.5G", 3 * 1024**3 // 2),
        (" 10 MiB ", 10 * 1024**2),
        ("3GB", 3 * 1024**3),
        ("0", 0),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "2X", "1 2", "lots", "1e9"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="invalid cache size"):
        parse_size(text)


@pytest.mark.parametrize(
    "key",
    [
        KEY.upper(),
        KEY[:-1],
        KEY + "0",
        "g" * 64,
        "../" + KEY[3:],
        KEY[:2] + "/" + KEY[3:],
        "",
    ],
)
def test_invalid_keys_are_refused(cache, key):
    with pytest.raises(ValueError, match="invalid cache key"):
        cache.get("objects", key)
    with pytest.raises(ValueError, match="invalid cache key"):
        cache.put("objects", key, DATA)
    assert not cache.root.exists()


def test_unknown_kinds_are_refused(cache):
    for kind in ("other", "", "../objects"):
        with pytest.raises(ValueError, match="unknown cache kind"):
            cache.get(kind, KEY)
        with pytest.raises(ValueError, match="unknown cache kind"):
            cache.put(kind, KEY, DATA)


# -- entries -----------------------------------------------------------------------


def test_round_trip(cache):
    for kind in KINDS:
        cache.put(kind, KEY, DATA)
    for kind in KINDS:
        assert cache.get(kind, KEY) == DATA
    cache.put("objects", KEY, b"")  # replaces, and an empty payload is valid
    assert cache.get("objects", KEY) == b""
    stored = len(KINDS) + 1
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (len(KINDS) + 1, 0, stored)
    data = entry_path(cache, "objects", KEY).read_bytes()
    assert data.startswith(b"AOTC-CACHE 1 ")
    assert temp_files(cache.root) == []


def test_miss(cache):
    assert cache.get("objects", KEY) is None
    cache.put("libraries", KEY, DATA)
    assert cache.get("objects", KEY) is None  # kinds are separate
    assert (cache.stats.hits, cache.stats.misses, cache.stats.corrupt) == (0, 2, 0)


def test_entry_format(cache):
    cache.put("objects", KEY, b"payload")
    header, payload = entry_path(cache, "objects", KEY).read_bytes().split(b"\n", 1)
    digest = hashlib.sha256(b"payload").hexdigest()
    assert header == f"AOTC-CACHE 1 {digest} 7".encode()
    assert payload == b"payload"


def test_directories_are_private(cache):
    cache.put("objects", KEY, DATA)
    for d in (cache.root, cache.root / "objects", cache.root / "objects" / KEY[:2]):
        assert d.stat().st_mode & 0o077 == 0, oct(d.stat().st_mode)


def _truncate(data: bytes) -> bytes:
    return data[:-1]


def _flip_payload_byte(data: bytes) -> bytes:
    i = len(data) - 10
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _bad_magic(data: bytes) -> bytes:
    return b"AOTC-CACHX" + data[10:]


def _bad_version(data: bytes) -> bytes:
    return data.replace(b"AOTC-CACHE 1 ", b"AOTC-CACHE 2 ", 1)


def _bad_length(data: bytes) -> bytes:
    header, payload = data.split(b"\n", 1)
    return header + b"0\n" + payload


def _no_header(data: bytes) -> bytes:
    return data.split(b"\n", 1)[1]


def _empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize(
    "corrupt",
    [_truncate, _flip_payload_byte, _bad_magic, _bad_version, _bad_length, _no_header, _empty],
)
def test_corrupt_entry_is_deleted_and_rebuilt(cache, corrupt):
    cache.put("objects", KEY, DATA)
    path = entry_path(cache, "objects", KEY)
    path.write_bytes(corrupt(path.read_bytes()))

    assert cache.get("objects", KEY) is None
    assert (cache.stats.corrupt, cache.stats.misses, cache.stats.hits) == (1, 1, 0)
    assert not path.exists()

    cache.put("objects", KEY, DATA)
    assert cache.get("objects", KEY) == DATA
    assert cache.stats.corrupt == 1


def test_unreadable_entry_is_a_corrupt_miss(cache):
    path = entry_path(cache, "objects", KEY)
    path.mkdir(parents=True)  # a directory where the entry file should be: reading fails
    assert cache.get("objects", KEY) is None
    assert (cache.stats.corrupt, cache.stats.misses) == (1, 1)


def test_hit_refreshes_mtime(cache):
    cache.put("objects", KEY, DATA)
    path = entry_path(cache, "objects", KEY)
    os.utime(path, (1000, 1000))
    assert cache.get("objects", KEY) == DATA
    assert path.stat().st_mtime > time.time() - 60


# -- concurrency -------------------------------------------------------------------

# Loads cache.py by path, as the compiler launcher can, and hammers one key.
_WORKER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("aotc_cache", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["aotc_cache"] = mod
    spec.loader.exec_module(mod)
    role, root, key, start, stop = sys.argv[2], sys.argv[3], sys.argv[4], *map(float, sys.argv[5:7])
    data = bytes(range(256)) * 1024
    cache = mod.CompileCache(root)
    while time.time() < start:
        time.sleep(0.001)
    ops = bad = 0
    while time.time() < stop:
        if role == "writer":
            cache.put("objects", key, data)
        else:
            got = cache.get("objects", key)
            bad += got is not None and got != data
        ops += 1
    print(ops, bad, cache.stats.corrupt, cache.stats.hits)
    """
)


def test_two_writers_and_a_reader(tmp_path):
    root = tmp_path / "cache"
    start = time.time() + 0.5  # after every interpreter has started
    stop = start + 1.0
    args = [str(CACHE_PY), "", str(root), KEY, str(start), str(stop)]
    procs = []
    for role in ("writer", "writer", "reader"):
        args[1] = role
        cmd = [sys.executable, "-c", _WORKER, *args]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        results.append([int(x) for x in out.split()])

    (w1, *_), (w2, *_), (reads, bad, corrupt, hits) = results
    assert w1 > 5 and w2 > 5 and reads > 5
    assert bad == 0 and corrupt == 0
    assert hits > 0
    shard = root / "objects" / KEY[:2]
    assert [p.name for p in shard.iterdir()] == [KEY]
    cache = CompileCache(root)
    assert cache.get("objects", KEY) == bytes(range(256)) * 1024
    assert cache.info().entries == {"libraries": 0, "objects": 1, "triton": 0}


def test_module_imports_only_the_standard_library():
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("aotc_cache", {str(CACHE_PY)!r})
        mod = importlib.util.module_from_spec(spec)
        sys.modules["aotc_cache"] = mod
        spec.loader.exec_module(mod)
        bad = [m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "aot", "packager")]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-I", "-c", code], check=True)


# -- eviction ----------------------------------------------------------------------


def _keys(n: int) -> list[str]:
    return [cache_key(str(i)) for i in range(n)]


def _entry_size(payload: bytes) -> int:
    return len(cache_module._encode(payload))


def test_lru_eviction_order(tmp_path):
    payload = b"x" * 1000
    size = _entry_size(payload)
    # Five entries exceed 4.2; evicting down to 90% of it (3.78) leaves three.
    cache = CompileCache(tmp_path / "cache", max_bytes=int(4.2 * size))
    a, b, c, d, e = _keys(5)
    for i, key in enumerate((a, b, c, d)):
        cache.put("objects", key, payload)
        os.utime(entry_path(cache, "objects", key), (1000 * (i + 1),) * 2)
    assert cache.stats.evicted == 0

    assert cache.get("objects", a) == payload  # a, the oldest, becomes the newest
    cache.put("objects", e, payload)

    assert cache.stats.evicted == 2
    survivors = {k for k in (a, b, c, d, e) if entry_path(cache, "objects", k).exists()}
    assert survivors == {a, d, e}
    assert cache.info().total_bytes <= 0.9 * cache.max_bytes


def test_eviction_spans_kinds(tmp_path):
    payload = b"y" * 500
    cache = CompileCache(tmp_path / "cache", max_bytes=int(2.5 * _entry_size(payload)))
    old, mid, new = _keys(3)
    cache.put("libraries", old, payload)
    os.utime(entry_path(cache, "libraries", old), (1000, 1000))
    cache.put("objects", mid, payload)
    os.utime(entry_path(cache, "objects", mid), (2000, 2000))
    cache.put("objects", new, payload)
    assert cache.get("libraries", old) is None
    assert cache.get("objects", mid) == payload
    assert cache.get("objects", new) == payload


def test_entry_larger_than_bound_is_not_stored(tmp_path):
    cache = CompileCache(tmp_path / "cache", max_bytes=1000)
    small = b"s" * 100
    cache.put("objects", KEY, small)
    big_key = cache_key("big")
    cache.put("objects", big_key, b"b" * 1000)  # 1000 + header > 1000
    assert cache.get("objects", big_key) is None
    assert not entry_path(cache, "objects", big_key).exists()
    assert cache.get("objects", KEY) == small  # nothing evicted for it
    assert (cache.stats.stores, cache.stats.evicted) == (1, 0)


def test_eviction_removes_stale_temp_files(cache):
    cache.put("objects", KEY, DATA)
    shard = entry_path(cache, "objects", KEY).parent
    stale, fresh = shard / ".tmp-1-stale", shard / ".tmp-2-fresh"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200,) * 2)
    cache.put("objects", cache_key("other"), DATA)
    assert not stale.exists()
    assert fresh.exists()  # may be a put in progress in another process
    assert cache.info().entries["objects"] == 2


# -- info, clear, configuration ----------------------------------------------------


def test_info_and_clear(cache):
    assert cache.info().entries == {"libraries": 0, "objects": 0, "triton": 0}  # missing root
    assert cache.clear() == 0
    keys = _keys(3)
    for key in keys:
        cache.put("objects", key, DATA)
    cache.put("libraries", keys[0], b"lib")
    shard = entry_path(cache, "objects", keys[0]).parent
    (shard / ".tmp-9-x").write_bytes(b"partial")

    info = cache.info()
    assert isinstance(info, CacheInfo)
    assert info.root == cache.root and info.max_bytes == DEFAULT_MAX_BYTES
    assert info.entries == {"libraries": 1, "objects": 3, "triton": 0}
    assert info.bytes == {
        "libraries": _entry_size(b"lib"),
        "objects": 3 * _entry_size(DATA),
        "triton": 0,
    }
    assert info.total_bytes == _entry_size(b"lib") + 3 * _entry_size(DATA)
    text = info.format()
    assert str(cache.root) in text and "2.0 GiB" in text
    assert "objects          3 entries" in text

    assert cache.clear() == 4
    assert cache.info().total_bytes == 0
    assert temp_files(cache.root) == []
    assert all(cache.get("objects", k) is None for k in keys)


def test_from_env(tmp_path):
    env = {"AOTC_CACHE_DIR": str(tmp_path / "c"), "AOTC_CACHE_MAX_SIZE": "500M"}
    cache = CompileCache.from_env(env)
    assert cache is not None
    assert cache.root == tmp_path / "c" and cache.max_bytes == 500 * 1024**2

    cache = CompileCache.from_env({"HOME": str(tmp_path)} | {"AOTC_CACHE": "1"})
    assert cache is not None and cache.max_bytes == DEFAULT_MAX_BYTES
    assert cache.root == Path("~/.cache/aotc").expanduser()

    cache = CompileCache.from_env({"AOTC_CACHE_DIR": "~/elsewhere"})
    assert cache is not None and cache.root == Path.home() / "elsewhere"

    for off in ("0", "off", "FALSE", "no"):
        assert CompileCache.from_env({"AOTC_CACHE": off, **env}) is None

    with pytest.raises(ValueError, match="AOTC_CACHE_MAX_SIZE.*lots"):
        CompileCache.from_env({"AOTC_CACHE_MAX_SIZE": "lots"})


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_warns_once(tmp_path):
    root = tmp_path / "cache"
    root.mkdir(mode=0o500)
    try:
        cache = CompileCache(root)
        with pytest.warns(RuntimeWarning, match="aotc compile cache"):
            cache.put("objects", KEY, DATA)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cache.put("objects", cache_key("second"), DATA)  # no second warning
        assert cache.stats.stores == 0
        assert cache.get("objects", KEY) is None
    finally:
        root.chmod(0o700)


def test_write_error_warns_and_does_not_raise(cache, monkeypatch):
    """Same as above but runs as root too: the write itself fails (a full disk)."""

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "fsync", no_space)
    with pytest.warns(RuntimeWarning, match="No space left"):
        cache.put("objects", KEY, DATA)
    monkeypatch.undo()
    assert cache.stats.stores == 0
    assert cache.get("objects", KEY) is None
    assert temp_files(cache.root) == []
