"""The build stage with the compile cache (docs/ARCHITECTURE.md: compile cache).

Two levels, both content-addressed in one CompileCache:
- libraries: the whole model.so, keyed by every file of the source tree (the
  generated sources, CMakeLists.txt with its flags and -march, the headers),
  the compiler (path and version text), the CMake and Ninja binaries, the
  aotc, torch and triton versions, the export options and the user's
  cache_key_tag. A hit runs no compiler and not even CMake.
- objects: on a library miss the build goes through compile_launcher.py, so
  translation units whose key is unchanged come from the cache and only the
  others are compiled (then the library is linked).

BuildCounters counts compiler invocations (translation units compiled plus
the link) and cache hits and misses at both levels, as test_codecache does.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .builder import build_library, find_cmake, find_ninja
from .cache import CompileCache, cache_key
from .cmake_project import write_source_tree
from .compile_launcher import (
    ENV_BUILD_DIR,
    ENV_CACHE_DIR,
    ENV_CACHE_MAX,
    ENV_KEY_SALT,
    ENV_SOURCE_DIR,
    ENV_STATS,
)
from .toolchain import binary_identity, compiler_identity, cxx_compiler, versions

# Options that change how fast a package is made, never what is in it.
_NOT_IN_KEY = frozenset({"build_jobs"})


@dataclass
class BuildCounters:
    compiles: int = 0  # compiler processes run (translation units + links)
    cache_hits: int = 0
    cache_misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def key_salt(options: Any) -> str:
    """What both cache levels key on besides sources and the compiler: the
    aotc, torch and triton versions and the export options (with the user's
    cache_key_tag)."""
    parts = [f"{k}={v}" for k, v in sorted(versions().items())]
    fields = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_IN_KEY}
    parts += [f"{k}={fields[k]!r}" for k in sorted(fields)]
    return cache_key(*parts)


def library_key(tree: Mapping[str, bytes], options: Any) -> str:
    """The library cache key of the source |tree| built with |options|
    (an ExportOptions) on this machine's toolchain."""
    parts: list[str | bytes] = ["library", key_salt(options)]
    parts.append(compiler_identity(cxx_compiler()))
    parts += [binary_identity(find_cmake()), binary_identity(find_ninja())]
    for name in sorted(tree):
        parts += [name, tree[name]]
    return cache_key(*parts)


def build_cached(
    tree: Mapping[str, bytes],
    work: Path,
    options: Any,
    cache: CompileCache | None,
) -> tuple[bytes, BuildCounters]:
    """model.so for the source |tree| (built under |work| on a miss) and the
    counters. |cache| None builds everything, caching nothing."""
    counters = BuildCounters()
    key = None
    if cache is not None:
        key = library_key(tree, options)
        library = cache.get("libraries", key)
        if library is not None:
            counters.cache_hits += 1
            return library, counters
        counters.cache_misses += 1
    src = write_source_tree(tree, work / "src")
    build = work / "build"
    launcher_env = None
    stats_path = None
    if cache is not None:
        fd, name = tempfile.mkstemp(prefix="stats-", dir=work)
        os.close(fd)
        stats_path = Path(name)
        launcher_env = {
            ENV_CACHE_DIR: str(cache.root),
            ENV_CACHE_MAX: str(cache.max_bytes),
            ENV_SOURCE_DIR: str(src),
            ENV_BUILD_DIR: str(build),
            ENV_STATS: str(stats_path),
            ENV_KEY_SALT: key_salt(options),
        }
    library = build_library(src, build, options.build_jobs, launcher_env).read_bytes()
    counters.compiles += 1  # the link
    if stats_path is not None:
        events = stats_path.read_text().split()
        counters.compiles += events.count("compile")
        counters.cache_hits += events.count("hit")
        counters.cache_misses += events.count("miss")
    else:
        counters.compiles += sum(1 for name in tree if name.endswith(".cc"))
    if cache is not None and key is not None:  # (key exists iff cache does)
        cache.put("libraries", key, library)
    return library, counters
