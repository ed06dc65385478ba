"""Shared pytest fixtures: the native build (runtime + test model libraries) and
the fixture packages built from it.

Collection stays light: nothing here imports torch or builds anything until a
test asks for ``native_build`` or ``fixture_packages``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# `aot` and `packager` from this checkout, ahead of any pip-installed copy, so
# the tests always test the source in front of them.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# Another configured build (a sanitizer build, say) can stand in for build/pytest.
BUILD_DIR = Path(os.environ.get("AOTC_TEST_BUILD_DIR", REPO_ROOT / "build" / "pytest"))
JOBS = os.environ.get("AOTC_TEST_BUILD_JOBS", "2")  # the dev box has 2 cores


def pytest_configure(config: pytest.Config) -> None:
    _interpret_triton()
    _fresh_compile_cache(config)


def _interpret_triton() -> None:
    """tests/triton_interp.py runs Triton kernels with Triton's interpreter,
    which works only when TRITON_INTERPRET is set before triton is first
    imported (triton.language's own @jit helpers are made interpretable as
    they are defined), and any test module may import it first. Set it for the
    whole session, except in a GPU session (AOTC_TEST_DEVICE=cuda), where
    torch's own Triton kernels must compile. aotc's offline compiles are
    unaffected: their workers run without it (aot/build/triton_build.py)."""
    if os.environ.get("AOTC_TEST_DEVICE", "cpu") == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")


def _fresh_compile_cache(config: pytest.Config) -> None:
    """One compile cache for the session, started empty: tests that compile
    the same model share its library and objects, nothing leaks into (or is
    served from) the user's ~/.cache/aotc, and every run starts cold. Set
    AOTC_TEST_CACHE_DIR to keep a cache across runs."""
    chosen = os.environ.get("AOTC_TEST_CACHE_DIR")
    if chosen:
        os.environ["AOTC_CACHE_DIR"] = chosen
        return
    import tempfile

    directory = tempfile.mkdtemp(prefix="aotc-test-cache-")
    os.environ["AOTC_CACHE_DIR"] = directory
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


def _run(cmd: list[str], cwd: Path) -> tuple[bool, str]:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode == 0, proc.stdout


@dataclass
class NativeBuild:
    """build/pytest: the top-level CMake project with -DAOTC_BUILD_TESTS=ON.

    ``error`` holds the build log tail when the full build failed; the fixture
    libraries may still exist (they are built on their own as a fallback), so
    tests of the fixtures themselves can run while the runtime does not build.
    """

    build_dir: Path
    error: str | None = None
    _cache: dict[str, Path] = field(default_factory=dict)

    def require_complete(self) -> None:
        if self.error is not None:
            pytest.fail(f"the native build in {self.build_dir} failed:\n{self.error}")

    @property
    def fixture_dir(self) -> Path:
        return self.build_dir / "tests" / "fixtures"

    def fixture_library(self, name: str) -> Path:
        """The fixture model library tests/fixtures/<name> (<name>.so)."""
        path = self.fixture_dir / f"{name}.so"
        if not path.is_file():
            self.require_complete()
            pytest.fail(f"fixture library {path} was not built")
        return path

    def binary(self, name: str) -> Path:
        """An executable of the build (aotc-run, abi_e2e, a C++ test), found by name."""
        if name not in self._cache:
            found = [
                p
                for p in self.build_dir.rglob(name)
                if p.is_file() and os.access(p, os.X_OK) and "CMakeFiles" not in p.parts
            ]
            if not found:
                self.require_complete()
                pytest.fail(f"no executable named {name} in {self.build_dir}")
            self._cache[name] = min(found, key=lambda p: len(p.parts))
        return self._cache[name]

    @property
    def runtime_library(self) -> Path:
        """The build's libaotc.so (the C API)."""
        self.require_complete()
        path = self.build_dir / "cpp_runtime" / "libaotc.so"
        if not path.exists():
            pytest.fail(f"{path} was not built")
        return path.resolve()


def _configure_and_build(build_dir: Path) -> NativeBuild:
    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        pytest.skip("cmake and ninja are needed for the native build")
    build_dir.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers (scripts/gpu_check.sh uses them) share one build:
    # the first builds, the others wait on the lock and find it done.
    import fcntl

    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _configure_and_build_locked(build_dir)


def _configure_and_build_locked(build_dir: Path) -> NativeBuild:
    if not (build_dir / "CMakeCache.txt").is_file():
        ok, log = _run(
            [
                "cmake",
                "-S",
                str(REPO_ROOT),
                "-B",
                str(build_dir),
                "-G",
                "Ninja",
                "-DAOTC_BUILD_TESTS=ON",
                "-DCMAKE_BUILD_TYPE=Release",
            ],
            REPO_ROOT,
        )
        if not ok:
            shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
            (build_dir / "CMakeCache.txt").unlink(missing_ok=True)
            pytest.fail(f"cmake configure failed:\n{log[-8000:]}")
    ok, log = _run(["cmake", "--build", str(build_dir), "-j", JOBS], REPO_ROOT)
    if ok:
        return NativeBuild(build_dir)
    # Fall back to the fixture libraries alone so their own tests still run.
    _run(["cmake", "--build", str(build_dir), "-j", JOBS, "--target", "aotc_fixtures"], REPO_ROOT)
    return NativeBuild(build_dir, error=log[-8000:])


@pytest.fixture(scope="session")
def native_build() -> NativeBuild:
    """Configures (once) and builds build/pytest; reused between pytest runs."""
    return _configure_and_build(BUILD_DIR)


@pytest.fixture(scope="session", autouse=True)
def _use_built_runtime(request: pytest.FixtureRequest) -> None:
    """Points aot.runtime at the freshly built libaotc.so, for tests that use it.

    Only when some collected test needs the native build: pure-Python tests
    (the packager's) do not trigger a CMake build.
    """
    needs_native = any(
        "native_build" in item.fixturenames or "fixture_packages" in item.fixturenames
        for item in request.session.items
    )
    if not needs_native:
        return
    try:
        import aot.runtime as runtime
    except ImportError:
        return
    set_path = getattr(runtime, "set_library_path", None)
    if set_path is None:
        return
    build: NativeBuild = request.getfixturevalue("native_build")
    if build.error is None:
        set_path(build.runtime_library)


class FixturePackages:
    """The .pt2 of each fixture, built on first use into a session temp dir."""

    def __init__(self, build: NativeBuild, directory: Path) -> None:
        self.build = build
        self.directory = directory
        self._paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            import fixture_packages  # tests/ is on sys.path (rootdir conftest)

            builder = fixture_packages.BUILDERS[name]
            self._paths[name] = builder(self.build.fixture_library, self.directory / f"{name}.pt2")
        return self._paths[name]

    def build_variant(self, name: str, variant: str, **overrides: object) -> Path:
        """A package of fixture |name| with builder keyword |overrides| (not cached)."""
        import fixture_packages

        builder = fixture_packages.BUILDERS[name]
        return builder(self.build.fixture_library, self.directory / f"{variant}.pt2", **overrides)

    def names(self) -> list[str]:
        import fixture_packages

        return list(fixture_packages.BUILDERS)


@pytest.fixture(scope="session")
def fixture_packages(
    native_build: NativeBuild, tmp_path_factory: pytest.TempPathFactory
) -> FixturePackages:
    """fixture_packages["affine"] -> Path of affine.pt2 (built once per session)."""
    return FixturePackages(native_build, tmp_path_factory.mktemp("fixture_packages"))
