"""The kernel-level compile cache: a compiler launcher (CMake's
CMAKE_CXX_COMPILER_LAUNCHER) that serves object files from the cache.

Ninja runs ``python -m aot.build.compile_launcher <compiler> <args...>`` for
every translation unit. The object's key hashes the compiler's identity, its
arguments with the source and build directories replaced by placeholders (they
are fresh temp dirs per export), the source file and every header of the
project's include directory. A hit writes the object (and a one-line depfile
for Ninja); a miss runs the compiler and stores what it wrote. Each outcome
is appended to $AOTC_BUILD_STATS ("hit", "miss", "compile") for the export's
counters. Without $AOTC_BUILD_CACHE_DIR it just runs the compiler.

Imports only the standard library and aot.build.cache/toolchain (no torch):
it starts once per translation unit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .cache import DEFAULT_MAX_BYTES, CompileCache, cache_key
from .toolchain import compiler_identity

ENV_CACHE_DIR = "AOTC_BUILD_CACHE_DIR"
ENV_CACHE_MAX = "AOTC_BUILD_CACHE_MAX_BYTES"
ENV_SOURCE_DIR = "AOTC_BUILD_SOURCE_DIR"
ENV_BUILD_DIR = "AOTC_BUILD_DIR"
ENV_STATS = "AOTC_BUILD_STATS"
# Everything outside the command line that changes the build (aotc, torch and
# triton versions, export options, the user's cache_key_tag), hashed.
ENV_KEY_SALT = "AOTC_BUILD_KEY_SALT"


def _value_after(args: list[str], flag: str) -> str | None:
    for k, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[k + 1]
    return None


def _record(event: str) -> None:
    path = os.environ.get(ENV_STATS)
    if path:
        # One short O_APPEND write per event: atomic between parallel TUs.
        with open(path, "a", encoding="utf-8") as f:
            f.write(event + "\n")


def object_key(compiler: str, args: list[str], source: Path, include_dir: Path | None) -> str:
    src_dir = os.environ.get(ENV_SOURCE_DIR, "")
    build_dir = os.environ.get(ENV_BUILD_DIR, "")
    parts: list[str | bytes] = [
        "object",
        os.environ.get(ENV_KEY_SALT, ""),
        compiler_identity(compiler),
    ]
    for arg in args:
        if src_dir:
            arg = arg.replace(src_dir, "<src>")
        if build_dir:
            arg = arg.replace(build_dir, "<build>")
        parts.append(arg)
    parts.append(source.read_bytes())
    if include_dir is not None and include_dir.is_dir():
        for header in sorted(p for p in include_dir.rglob("*") if p.is_file()):
            parts += [header.relative_to(include_dir).as_posix(), header.read_bytes()]
    return cache_key(*parts)


def run(argv: list[str]) -> int:
    compiler, args = argv[0], argv[1:]
    root = os.environ.get(ENV_CACHE_DIR)
    output, depfile = _value_after(args, "-o"), _value_after(args, "-MF")
    source = _value_after(args, "-c")
    if not root or "-c" not in args or output is None or source is None:
        _record("compile")
        return subprocess.call([compiler, *args])
    src_dir = os.environ.get(ENV_SOURCE_DIR)
    include_dir = Path(src_dir) / "include" if src_dir else None
    cache = CompileCache(root, int(os.environ.get(ENV_CACHE_MAX, "0")) or DEFAULT_MAX_BYTES)
    key = object_key(compiler, args, Path(source), include_dir)
    data = cache.get("objects", key)
    if data is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_bytes(data)
        if depfile:
            # Ninja reads (and deletes) the depfile after the command.
            Path(depfile).write_text(f"{output}: {source}\n")
        _record("hit")
        return 0
    _record("miss")
    _record("compile")
    code = subprocess.call([compiler, *args])
    if code == 0:
        cache.put("objects", key, Path(output).read_bytes())
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
