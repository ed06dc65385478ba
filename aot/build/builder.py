"""Builds model.so from a source tree (cmake_project.py) with CMake + Ninja.

cmake comes from PATH, else the pip ``cmake`` package; ninja from the pip
``ninja`` package, else PATH. Ninja compiles the kernel files in parallel
(``jobs``; 0 = one per CPU). A failed configure or build raises BuildError
carrying the compiler's first error lines, not a wall of log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

LAUNCHER = "aot.build.compile_launcher"
_AOT_PARENT = Path(__file__).resolve().parents[2]


class BuildError(Exception):
    """The model library did not build. ``log`` holds the full output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def find_cmake() -> str:
    found = shutil.which("cmake")
    if found:
        return found
    try:
        import cmake  # the pip package

        candidate = Path(cmake.CMAKE_BIN_DIR) / "cmake"
        if candidate.is_file():
            return str(candidate)
    except (ImportError, AttributeError):
        pass
    raise BuildError("cmake not found: install it (pip install cmake) or put it on PATH")


def find_ninja() -> str:
    try:
        import ninja  # the pip package

        candidate = Path(ninja.BIN_DIR) / "ninja"
        if candidate.is_file():
            return str(candidate)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("ninja")
    if found:
        return found
    raise BuildError("ninja not found: install it (pip install ninja) or put it on PATH")


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_library(
    source_dir: Path, build_dir: Path, jobs: int = 0, launcher_env: Mapping[str, str] | None = None
) -> Path:
    """Configures and builds |source_dir| (a CMake project from
    cmake_project.source_tree) in |build_dir|; returns the path of model.so.
    With |launcher_env| every compile goes through the object cache's
    launcher (compile_launcher.py), configured by those variables."""
    cmake, ninja = find_cmake(), find_ninja()
    build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(launcher_env or {})
    if not (build_dir / "build.ninja").is_file():
        configure = [
            cmake,
            "-S",
            str(source_dir),
            "-B",
            str(build_dir),
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={ninja}",
        ]
        if launcher_env:
            configure.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={sys.executable};-m;{LAUNCHER}")
        _run(configure, "configuring the model library", env)
    _run(
        [cmake, "--build", str(build_dir), "--parallel", str(jobs or default_jobs())],
        "building the model library",
        env,
    )
    library = build_dir / "model.so"
    if not library.is_file():
        raise BuildError(f"the build finished but {library} does not exist")
    return library


def _run(command: list[str], what: str, extra_env: Mapping[str, str] | None = None) -> None:
    env = dict(os.environ, LC_ALL="C", **(extra_env or {}))  # untranslated compiler messages
    if extra_env:
        # The launcher imports this checkout's aot package.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_AOT_PARENT), os.environ.get("PYTHONPATH", "")) if p
        )
    try:
        proc = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    except OSError as e:
        raise BuildError(f"{what}: cannot run {command[0]}: {e}") from e
    if proc.returncode != 0:
        raise BuildError(f"{what} failed:\n{first_errors(proc.stdout)}", proc.stdout)


_ERROR = re.compile(r"(: error\b|: fatal error\b|undefined reference|CMake Error|\berror:)")


def first_errors(log: str, max_lines: int = 20) -> str:
    """|log| from its first error line on (at most |max_lines| lines); its last
    lines when no line looks like an error."""
    lines = log.splitlines()
    for k, line in enumerate(lines):
        if _ERROR.search(line):
            return "\n".join(lines[k : k + max_lines])
    return "\n".join(lines[-max_lines:])
