"""What built a library, for the compile cache's keys: the C++ compiler (the
one CMake will pick: $CXX, else ``c++`` on PATH) with its version text, the
CMake and Ninja binaries, and the versions of aotc, torch and triton.

Kept free of torch imports: the versions come from package metadata, so the
compiler launcher (compile_launcher.py) can use this module too.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from importlib import metadata

from .. import __version__ as AOTC_VERSION


def cxx_compiler() -> str:
    """The C++ compiler CMake will configure with: $CXX, else ``c++``."""
    name = os.environ.get("CXX") or "c++"
    found = shutil.which(name.split()[0]) if name else None
    return os.path.realpath(found) if found else name


@functools.cache
def compiler_identity(compiler: str) -> str:
    """|compiler|'s resolved path and its ``--version`` text: a different
    compiler or version gives a different identity."""
    try:
        proc = subprocess.run(
            [compiler, "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, LC_ALL="C"),
            timeout=60,
        )
        version = proc.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        version = f"unavailable: {e}"
    return f"{os.path.realpath(compiler)}\n{version}"


def binary_identity(path: str) -> str:
    """A binary's resolved path, size and mtime: changes when it is replaced
    (cheaper than running pip's cmake wrapper for its version)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return f"{real} (missing)"
    return f"{real} {st.st_size} {st.st_mtime_ns}"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def versions() -> dict[str, str]:
    """aotc, torch and triton versions (triton "none" where absent)."""
    return {
        "aotc": AOTC_VERSION,
        "torch": package_version("torch"),
        "triton": package_version("triton"),
    }
