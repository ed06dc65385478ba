"""Storage layer of aotc's compile cache: content-addressed bytes on disk.

Callers compute the key (a sha256 over everything that changes the output:
source, compiler and version, flags, target) with ``cache_key`` and store the
compiled bytes under it; this module only stores, checks and evicts.

Layout::

    <root>/<kind>/<key[:2]>/<key>          one entry per file
    <root>/<kind>/<key[:2]>/.tmp-<pid>-<hex>   a put in progress

``kind`` is one of ``KINDS``; ``key`` is 64 lowercase hex characters (checked,
since keys become file names).

Entry format: one ASCII header line, then the payload::

    AOTC-CACHE 1 <sha256 hex of payload> <payload length>\\n<payload>

Guarantees:

- ``get`` checks magic, version, length and sha256 on every read. A truncated,
  altered or unreadable entry is never returned: it is deleted (best effort)
  and counted as corrupt and as a miss.
- ``put`` is atomic: it writes a temp file in the entry's directory, fsyncs it
  and ``os.replace``s it onto the final name, so a reader sees the old entry,
  the new one or none, never a partial file. Processes storing the same key at
  once all succeed and leave one valid entry. A crash leaves at worst a temp
  file, which a later eviction pass removes after an hour.
- Failing to write (disk full, read-only directory) never fails the caller: the
  cache is an optimisation, so ``put`` warns once per instance and goes on.
- Size bound: after a put, if all entries together exceed ``max_bytes``, the
  least recently used ones are deleted until the total is at most 90% of it.
  Recency is the file's mtime, which a hit refreshes (atime is unreliable under
  relatime/noatime). An entry larger than the bound is not stored at all.
  Concurrent evictions are tolerated (a file vanishing under us is fine), and
  the bound can be briefly overshot while several processes put at once.

Each put rescans the cache to size it (one stat per entry); puts follow a real
compilation, which costs far more.

This module imports only the standard library: the compiler launcher (a
subprocess per compile) imports it and must start fast.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_BYTES = 2 * 1024**3
KINDS = ("libraries", "objects", "triton")

_MAGIC = b"AOTC-CACHE"
_VERSION = b"1"
_MAX_HEADER = 128  # magic + version + 64 hex + a length: well under this
_TMP_PREFIX = ".tmp-"
_TMP_MAX_AGE_S = 3600.0  # older temp files are leftovers of crashed puts
_EVICT_TO = 0.9  # evict down to this fraction of max_bytes, so puts don't evict one by one
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_OFF_VALUES = ("0", "off", "false", "no")
# A cache holds code that gets loaded and run: other users must not be able to
# plant entries, so every directory we create is private to its owner.
_DIR_MODE = 0o700


def cache_key(*parts: str | bytes) -> str:
    """sha256 hex of |parts|, each length-prefixed (so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def parse_size(text: str) -> int:
    """Bytes from "2G", "500M", "64K", "1.5G", "1234" (binary units; "GB"/"GiB" accepted)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"invalid cache size {text!r}: expected a number of bytes with an optional "
            "K, M, G or T suffix, e.g. 500M or 2G"
        )
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


@dataclass
class CacheStats:
    """Counters of one CompileCache instance (not shared between processes)."""

    hits: int = 0
    misses: int = 0  # includes corrupt entries
    corrupt: int = 0
    stores: int = 0
    evicted: int = 0


@dataclass
class CacheInfo:
    """What is on disk now: entry counts and bytes per kind."""

    root: Path
    max_bytes: int
    entries: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def total_entries(self) -> int:
        return sum(self.entries.values())

    def format(self) -> str:
        """The text of `aotc cache info`."""
        used = 100.0 * self.total_bytes / self.max_bytes if self.max_bytes else 0.0
        lines = [
            f"cache directory  {self.root}",
            f"max size         {_format_size(self.max_bytes)}",
        ]
        for kind in KINDS:
            count, size = self.entries.get(kind, 0), self.bytes.get(kind, 0)
            lines.append(f"{kind:<16} {count} entries, {_format_size(size)}")
        lines.append(
            f"{'total':<16} {self.total_entries} entries, {_format_size(self.total_bytes)}"
            f" ({used:.1f}% of max)"
        )
        return "\n".join(lines)


@dataclass
class _Entry:
    path: Path
    size: int
    mtime: float


class CompileCache:
    """A directory of content-addressed entries (see the module docstring).

    Thread-compatible: one instance per thread; any number of processes may
    share one directory.
    """

    def __init__(self, root: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> CompileCache | None:
        """The cache configured by $AOTC_CACHE, $AOTC_CACHE_DIR and $AOTC_CACHE_MAX_SIZE.

        $AOTC_CACHE=0 (or off/false/no) disables it: returns None. The directory
        defaults to ~/.cache/aotc, the size to DEFAULT_MAX_BYTES.
        """
        if environ.get("AOTC_CACHE", "").strip().lower() in _OFF_VALUES:
            return None
        root = environ.get("AOTC_CACHE_DIR") or "~/.cache/aotc"
        max_bytes = DEFAULT_MAX_BYTES
        if size := environ.get("AOTC_CACHE_MAX_SIZE"):
            try:
                max_bytes = parse_size(size)
            except ValueError as e:
                raise ValueError(f"$AOTC_CACHE_MAX_SIZE: {e}") from None
        return cls(Path(root).expanduser(), max_bytes)

    # -- reading -----------------------------------------------------------------

    def get(self, kind: str, key: str) -> bytes | None:
        """The payload stored under (|kind|, |key|), or None on a miss.

        A corrupt entry is deleted and reported as a miss, never returned.
        """
        path = self._path(kind, key)
        try:
            with open(path, "rb") as f:
                ino = os.fstat(f.fileno()).st_ino
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            self.stats.misses += 1
            return None
        except OSError:
            ino = None
            data = None
        payload = _decode(data) if data is not None else None
        if payload is None:
            self._discard(path, ino)
            self.stats.corrupt += 1
            self.stats.misses += 1
            return None
        try:
            os.utime(path)  # a hit makes the entry most recently used
        except OSError:
            pass  # evicted meanwhile, or not ours to touch: the payload is still good
        self.stats.hits += 1
        return payload

    def _discard(self, path: Path, ino: int | None) -> None:
        """Deletes a corrupt entry, unless a concurrent put has replaced it since we read it."""
        try:
            if ino is None or os.stat(path).st_ino == ino:
                os.unlink(path)
        except OSError:
            pass  # best effort: the next get finds it corrupt again

    # -- writing -----------------------------------------------------------------

    def put(self, kind: str, key: str, data: bytes) -> None:
        """Stores |data| under (|kind|, |key|), atomically; never raises for I/O errors."""
        path = self._path(kind, key)
        blob = _encode(data)
        if len(blob) > self.max_bytes:
            return  # it would evict everything and then itself
        try:
            self._make_dirs(path.parent)
            _write_atomic(path, blob)
        except OSError as e:
            self._warn(f"cannot store {kind}/{key} in {self.root}: {e}")
            return
        self.stats.stores += 1
        self._evict(keep=path)

    def _make_dirs(self, directory: Path) -> None:
        # Parents above the root (~/.cache) get the default mode; the root and
        # everything under it are private (see _DIR_MODE).
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for d in (self.root, directory.parent, directory):
            try:
                d.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                pass

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"aotc compile cache: {message}; continuing without it", RuntimeWarning, 3
            )

    # -- eviction ----------------------------------------------------------------

    def _evict(self, keep: Path) -> None:
        """Deletes least recently used entries (never |keep|) if the cache is over its bound."""
        entries = list(self._scan(clean_temps=True))
        total = sum(e.size for e in entries)
        if total <= self.max_bytes:
            return
        target = self.max_bytes * _EVICT_TO
        entries.sort(key=lambda e: (e.mtime, str(e.path)))
        for entry in entries:
            if total <= target:
                break
            if entry.path == keep:
                continue
            try:
                os.unlink(entry.path)
                self.stats.evicted += 1
            except FileNotFoundError:
                pass  # another process evicted it: gone all the same
            except OSError:
                continue
            total -= entry.size

    def _scan(self, clean_temps: bool = False) -> Iterator[_Entry]:
        """Every entry file under the root; missing or unreadable directories are skipped."""
        now = time.time()
        for kind in KINDS:
            for shard in _listdir(self.root / kind):
                if not shard.is_dir(follow_symlinks=False):
                    continue
                for item in _listdir(Path(shard.path)):
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        continue  # vanished under us
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    if item.name.startswith(_TMP_PREFIX):
                        if clean_temps and now - st.st_mtime > _TMP_MAX_AGE_S:
                            _unlink_quietly(Path(item.path))
                    elif _KEY_RE.fullmatch(item.name):
                        yield _Entry(Path(item.path), st.st_size, st.st_mtime)

    # -- maintenance ---------------------------------------------------------------

    def info(self) -> CacheInfo:
        """Entry counts and bytes per kind, as on disk now (zeros for a missing root)."""
        info = CacheInfo(
            self.root, self.max_bytes, dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
        )
        for entry in self._scan():
            kind = entry.path.parent.parent.name
            info.entries[kind] += 1
            info.bytes[kind] += entry.size
        return info

    def clear(self) -> int:
        """Removes every entry and temp file; returns the number of entries removed."""
        removed = 0
        for kind in KINDS:
            for shard in _listdir(self.root / kind):
                if not shard.is_dir(follow_symlinks=False):
                    continue
                for item in _listdir(Path(shard.path)):
                    if _KEY_RE.fullmatch(item.name):
                        removed += _unlink_quietly(Path(item.path))
                    elif item.name.startswith(_TMP_PREFIX):
                        _unlink_quietly(Path(item.path))
        return removed

    def _path(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown cache kind {kind!r}; expected one of {KINDS}")
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid cache key {key!r}: expected 64 lowercase hex characters")
        return self.root / kind / key[:2] / key


def _encode(payload: bytes) -> bytes:
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    size = str(len(payload)).encode("ascii")
    return b" ".join((_MAGIC, _VERSION, digest, size)) + b"\n" + payload


def _decode(data: bytes) -> bytes | None:
    """The payload of an entry file, or None if anything about it is wrong."""
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        return None
    fields = data[:end].split(b" ")
    if len(fields) != 4:
        return None
    magic, version, digest, size = fields
    if magic != _MAGIC or version != _VERSION or not size.isdigit():
        return None
    payload = data[end + 1 :]
    if int(size) != len(payload):
        return None
    if hashlib.sha256(payload).hexdigest().encode("ascii") != digest:
        return None
    return payload


def _write_atomic(path: Path, blob: bytes) -> None:
    """Writes |blob| to a unique temp file beside |path|, fsyncs it, renames it onto |path|."""
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())  # data on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _listdir(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except OSError:
        return []


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _format_size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
