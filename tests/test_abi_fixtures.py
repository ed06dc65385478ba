"""The model ABI, clause by clause (docs/ABI.md), through the real runtime.

Each test loads a package built around a hand-written fixture library
(tests/fixtures/, packaged by tests/fixture_packages.py) with aot.runtime, the
Python binding over libaotc's C API. The C++ side is covered by ctest (the
runtime's unit tests and the fixtures' self-test) and by tests/cpp/abi_e2e.cc,
both run from here.

torch is imported inside the tests, so collecting this file stays cheap.
"""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fixture_packages as fp
import numpy as np
import pytest

# --------------------------------------------------------------------------- #
# Helpers                                                                       #
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _release_models() -> Any:
    """Collects after each test, so models a test created (kept by reference
    cycles or a failure's traceback) are released before the next test loads."""
    yield
    gc.collect()


def runtime() -> Any:
    import aot.runtime

    return aot.runtime


def load(path: Path, **kwargs: Any) -> Any:
    return runtime().load(path, **kwargs)


def tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array).copy())


def expect_error(fn: Callable[[], Any], code: str, text: str | re.Pattern[str]) -> Any:
    """Calls fn, expecting an AotcError with |code| whose message contains |text|
    (a string, or a compiled pattern to search for)."""
    with pytest.raises(runtime().AotcError) as info:
        fn()
    err = info.value
    assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
    if isinstance(text, re.Pattern):
        assert text.search(err.message), f"{text.pattern!r} not found in {err.message!r}"
    else:
        assert text in err.message, f"{text!r} not in {err.message!r}"
    return err


def quoted(name: str) -> re.Pattern[str]:
    """|name| in single or double quotes."""
    return re.compile(f"[\"']{re.escape(name)}[\"']")


def run_threads(count: int, target: Callable[[int], None], timeout: float = 120.0) -> list[str]:
    """Runs target(i) on |count| threads; returns the failures as strings."""
    failures: list[str] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            with lock:
                failures.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            failures.append("a thread did not finish in time")
    return failures


# --------------------------------------------------------------------------- #
# Native tests: ctest, the fixtures' self-test, the C++ end-to-end program      #
# --------------------------------------------------------------------------- #


def test_fixture_libraries_selftest(native_build: Any) -> None:
    """The fixtures against a fake host: a fixture bug never poses as a runtime bug."""
    exe = native_build.binary("fixture_selftest")
    proc = subprocess.run(
        [str(exe), str(native_build.fixture_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fixture_libraries_export_only_the_abi(native_build: Any) -> None:
    """Five exported functions, no C++ runtime dependency (docs/ABI.md section 2)."""
    expected = {
        "aotc_model_describe",
        "aotc_model_create",
        "aotc_model_plan",
        "aotc_model_run",
        "aotc_model_destroy",
    }
    for name in fp.BUILDERS:
        lib = native_build.fixture_library(name)
        nm = subprocess.run(
            ["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True
        )
        symbols = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
        want = expected - {"aotc_model_plan"} if name == "missing_symbol" else expected
        assert symbols == want, f"{name}: exports {sorted(symbols)}"
        needed = subprocess.run(
            ["readelf", "-d", str(lib)], capture_output=True, text=True, check=True
        ).stdout
        assert "libstdc++" not in needed and "libgcc_s" not in needed, f"{name}: {needed}"


def test_ctest(native_build: Any) -> None:
    """The runtime's C++ unit tests (cpp_runtime/tests) and the fixture self-test."""
    native_build.require_complete()
    proc = subprocess.run(
        ["ctest", "--output-on-failure", "-j", "2", "--timeout", "300"],
        cwd=native_build.build_dir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]


def test_cpp_end_to_end(native_build: Any, fixture_packages: Any) -> None:
    """tests/cpp/abi_e2e.cc: the C API, 8x200 concurrent runs, the barrier, bad inputs."""
    exe = native_build.binary("abi_e2e")
    names = ["affine", "barrier", "dynamic", "kernel_error", "future_abi", "missing_symbol"]
    args = [f"{n}={fixture_packages[n]}" for n in names]
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    sys.stdout.write(output)
    assert proc.returncode == 0, output
    assert "FAIL" not in proc.stdout


# --------------------------------------------------------------------------- #
# affine: basics, bad inputs, strides, outputs, concurrency, constants          #
# --------------------------------------------------------------------------- #


def test_affine_runs_and_matches_samples(fixture_packages: Any) -> None:
    model = load(fixture_packages["affine"])
    assert model.name == "affine"
    assert [(s.name, s.dtype, s.shape) for s in model.input_specs] == [("x", "float32", (4, 8))]
    assert [s.name for s in model.output_specs] == ["y", "r"]
    x = fp.affine_input(0)
    y, r = model(tensor(x))
    want_y, want_r = fp.affine_reference(x)
    np.testing.assert_array_equal(y.numpy(), want_y)
    np.testing.assert_array_equal(r.numpy(), want_r)
    assert y.is_contiguous() and r.is_contiguous()
    assert y.data_ptr() != r.data_ptr()


def test_affine_outputs_never_alias(fixture_packages: Any) -> None:
    """Outputs are fresh per run: distinct from inputs, each other, earlier runs."""
    model = load(fixture_packages["affine"])
    x = tensor(fp.affine_input(3))
    y1, r1 = model(x)
    y2, r2 = model(x)
    ptrs = {x.data_ptr(), y1.data_ptr(), r1.data_ptr(), y2.data_ptr(), r2.data_ptr()}
    assert len(ptrs) == 5
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda t: [t.zeros(4, 9)], 'input 0 "x": expected float32[4, 8], got float32[4, 9]'),
        (
            lambda t: [t.zeros(4, 8, dtype=t.float64)],
            'input 0 "x": expected float32[4, 8], got float64[4, 8]',
        ),
        (lambda t: [t.zeros(32)], 'input 0 "x": expected float32[4, 8], got float32[32]'),
        (lambda t: [t.zeros(4, 8), t.zeros(4, 8)], "takes 1 input (x), got 2"),
        (lambda t: [], "takes 1 input (x), got 0"),
    ],
    ids=["shape", "dtype", "rank", "too-many", "none"],
)
def test_affine_bad_inputs(
    fixture_packages: Any, make: Callable[[Any], list[Any]], text: str
) -> None:
    import torch

    model = load(fixture_packages["affine"])
    expect_error(lambda: model(*make(torch)), "INVALID_ARGUMENT", text)
    # The model is still fine afterwards.
    (y, _) = model(tensor(fp.affine_input(1)))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(fp.affine_input(1))[0])


def test_affine_caller_outputs_checked_against_plan(fixture_packages: Any) -> None:
    import torch

    model = load(fixture_packages["affine"])
    x = tensor(fp.affine_input(2))
    y, r = torch.empty(4, 16), torch.empty(4, 16)
    model.run([x], outputs=[y, r])
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(fp.affine_input(2))[0])
    expect_error(
        lambda: model.run([x], outputs=[torch.empty(4, 15), r]), "INVALID_ARGUMENT", 'output 0 "y"'
    )
    expect_error(
        lambda: model.run([x], outputs=[torch.empty(16, 4).t(), r]),
        "INVALID_ARGUMENT",
        'output 0 "y"',
    )


def test_affine_caller_outputs_must_not_overlap(fixture_packages: Any) -> None:
    import torch

    model = load(fixture_packages["affine"])
    buf = torch.zeros(64)
    x = buf[:32].view(4, 8)
    expect_error(
        lambda: model.run([x], outputs=[buf.view(4, 16), torch.empty(4, 16)]),
        "INVALID_ARGUMENT",
        "output 0 overlaps input 0",
    )
    y = torch.empty(4, 16)
    expect_error(
        lambda: model.run([torch.zeros(4, 8)], outputs=[y, y]),
        "INVALID_ARGUMENT",
        "output 1 overlaps output 0",
    )


@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded"])
def test_affine_non_contiguous_input_is_copied(fixture_packages: Any, layout: str) -> None:
    import torch

    model = load(fixture_packages["affine"])
    x = fp.affine_input(5)
    if layout == "transposed":
        t = tensor(x.T.copy()).t()
    elif layout == "sliced":
        big = torch.zeros(4, 16)
        big[:, ::2] = tensor(x)
        t = big[:, ::2]
    else:
        x = np.broadcast_to(x[:1], (4, 8)).copy()
        t = tensor(x[:1]).expand(4, 8)
    assert not t.is_contiguous()
    before = t.clone()
    y, r = model(t)
    want_y, want_r = fp.affine_reference(x)
    np.testing.assert_array_equal(y.numpy(), want_y)
    np.testing.assert_array_equal(r.numpy(), want_r)
    assert torch.equal(t, before)  # not mutated: never written back


def test_affine_8_threads_x_200_runs(fixture_packages: Any) -> None:
    """Concurrent runs on one model, each on its own input, every output checked."""
    model = load(fixture_packages["affine"])
    w, b = fp.affine_weights()

    def worker(t: int) -> None:
        for i in range(200):
            seed = t * 200 + i
            x = fp.affine_input(seed)
            y, r = model(tensor(x))
            want_y, want_r = fp.affine_reference(x, w, b)
            if not (np.array_equal(y.numpy(), want_y) and np.array_equal(r.numpy(), want_r)):
                raise AssertionError(f"run {i} (seed {seed}) gave a wrong output")

    assert run_threads(8, worker) == []


def test_affine_update_constants(fixture_packages: Any) -> None:
    import torch

    model = load(fixture_packages["affine"])
    x = fp.affine_input(7)
    w2 = np.full((8, 16), 0.5, dtype=np.float32)
    b2 = np.arange(16, dtype=np.float32)
    w2_t = tensor(w2)
    model.update_constants({"W": w2_t, "b": tensor(b2)})
    w2_t.fill_(100.0)  # the runtime copied the new constants
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(x, w2, b2)[0])
    expect_error(
        lambda: model.update_constants({"W": torch.zeros(8, 16)}), "INVALID_ARGUMENT", quoted("b")
    )
    expect_error(
        lambda: model.update_constants({"W": torch.zeros(8, 15), "b": torch.zeros(16)}),
        "INVALID_ARGUMENT",
        quoted("W"),
    )
    # A failed update leaves the last good set in place.
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(x, w2, b2)[0])


def test_affine_update_constants_during_runs(fixture_packages: Any) -> None:
    """Runs in flight finish on the old set; each run sees one whole set, never a mix."""
    model = load(fixture_packages["affine"])
    sets = [fp.affine_weights()]
    for k in range(1, 6):
        sets.append((np.full((8, 16), 0.25 * k, np.float32), np.full(16, float(k), np.float32)))
    x = fp.affine_input(11)
    allowed = [fp.affine_reference(x, w, b)[0] for w, b in sets]
    stop = threading.Event()

    def runner(_: int) -> None:
        while not stop.is_set():
            y, _ = model(tensor(x))
            if not any(np.array_equal(y.numpy(), a) for a in allowed):
                raise AssertionError("a run mixed two constant sets")

    def updater() -> None:
        try:
            for _ in range(5):
                for w, b in sets[1:]:
                    model.update_constants({"W": tensor(w), "b": tensor(b)})
        finally:
            stop.set()

    th = threading.Thread(target=updater)
    th.start()
    failures = run_threads(4, runner)
    th.join()
    assert failures == []
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), allowed[-1])


def test_affine_compressed_weights(fixture_packages: Any) -> None:
    path = fixture_packages.build_variant("affine", "affine_zstd", compress=True)
    model = load(path)
    x = fp.affine_input(4)
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(x)[0])


@pytest.mark.parametrize("library_loading", ["memfd", "tempfile"])
def test_affine_library_loading_paths(
    fixture_packages: Any, library_loading: str, tmp_path: Path
) -> None:
    """dlopen from a memfd, and the fallback: an unlinked temp file (docs/ABI.md 4.3)."""
    temp_dir = tmp_path / "libs"
    temp_dir.mkdir()
    model = load(fixture_packages["affine"], library_loading=library_loading, temp_dir=temp_dir)
    x = fp.affine_input(6)
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(x)[0])
    assert list(temp_dir.iterdir()) == []  # the temp file is unlinked right after dlopen


def test_affine_load_from_memory(fixture_packages: Any) -> None:
    data = bytearray(fixture_packages["affine"].read_bytes())
    model = load(data)
    data[:] = bytes(len(data))  # the runtime copied the bytes
    x = fp.affine_input(8)
    y, _ = model(tensor(x))
    np.testing.assert_array_equal(y.numpy(), fp.affine_reference(x)[0])


def test_different_libraries_loaded_at_once(fixture_packages: Any) -> None:
    """Each loaded model gets its own library, even while others stay loaded
    (a dlopen path reused from an earlier library would return that library)."""
    names = ["affine", "dynamic", "mutating", "stateful", "parallel", "kernel_error"]
    images = {name: fixture_packages[name].read_bytes() for name in names}
    models: list[Any] = []
    try:
        for _ in range(2):
            for name in names:
                # From memory through a memfd: no other file descriptor opens
                # between two loads, so a reused /proc/self/fd/N path is likely.
                models.append(load(images[name], library_loading="memfd"))
                assert models[-1].name == name
    finally:  # a failure must not keep libraries loaded for later tests
        for m in models:
            m.close()


def test_manifest_mismatch_refused(fixture_packages: Any) -> None:
    """The description is cross-checked against the manifest (docs/ABI.md 4.5)."""
    path = fixture_packages.build_variant(
        "affine", "affine_wrong_manifest", inputs=[fp.spec("x", "float32", [4, 9])]
    )
    err = expect_error(lambda: load(path), "CORRUPT_PACKAGE", quoted("x"))
    assert "4, 9" in err.message and "4, 8" in err.message, err.message


def test_foreign_isa_refused(fixture_packages: Any) -> None:
    target = dict(fp.CPU_TARGET, isa="aarch64")
    path = fixture_packages.build_variant("affine", "affine_aarch64", target=target)
    expect_error(lambda: load(path), "INCOMPATIBLE", "aarch64")


def test_corrupt_library_refused_before_dlopen(fixture_packages: Any, tmp_path: Path) -> None:
    bad = tmp_path / "affine_bad_library.pt2"
    fp.corrupt_entry(fixture_packages["affine"], "/model.so", bad)
    with pytest.raises(runtime().AotcError) as info:
        load(bad, verify_weights=False)
    assert info.value.code == "CORRUPT_PACKAGE", info.value.message
    assert "model.so" in info.value.message


def test_corrupt_weight_refused_when_verifying(fixture_packages: Any, tmp_path: Path) -> None:
    bad = tmp_path / "affine_bad_weight.pt2"
    entry = fp.corrupt_entry(fixture_packages["affine"], "weights/affine/W", bad)
    with pytest.raises(runtime().AotcError) as info:
        load(bad)
    assert info.value.code == "CORRUPT_PACKAGE", info.value.message
    assert entry.split("/")[-1] in info.value.message or '"W"' in info.value.message


# --------------------------------------------------------------------------- #
# dynamic: plan() ranges, relations, workspace                                  #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("s0", [2, 3, 7, 33, 64])
def test_dynamic_sizes(fixture_packages: Any, s0: int) -> None:
    model = load(fixture_packages["dynamic"])
    rng = np.random.default_rng(s0)
    x = rng.standard_normal((s0, 8)).astype(np.float32)
    y = rng.standard_normal((2 * s0, 8)).astype(np.float32)
    (z,) = model(tensor(x), tensor(y))
    assert tuple(z.shape) == (2 * s0, 8)
    np.testing.assert_array_equal(z.numpy(), fp.dynamic_reference(x, y))
    assert model.plan([(s0, 8), (2 * s0, 8)]) == [(2 * s0, 8)]


def test_dynamic_specs(fixture_packages: Any) -> None:
    model = load(fixture_packages["dynamic"])
    x, y = model.input_specs
    assert x.shape == ("s0", 8) and x.ranges[0] == (2, 64)
    assert y.shape == ("2*s0", 8)
    assert model.output_specs[0].shape == ("2*s0", 8)


@pytest.mark.parametrize(
    ("s0", "y_rows", "text"),
    [
        (65, 130, 'input 0 "x" dim 0 (s0): 65 is outside [2, 64]'),
        (1, 2, 'input 0 "x" dim 0 (s0): 1 is outside [2, 64]'),
        (4, 9, 'input 1 "y" dim 0: expected 2*s0 = 8, got 9'),
        (4, 4, 'input 1 "y" dim 0: expected 2*s0 = 8, got 4'),
    ],
    ids=["above-max", "below-min", "relation-odd", "relation-short"],
)
def test_dynamic_refusals(fixture_packages: Any, s0: int, y_rows: int, text: str) -> None:
    import torch

    model = load(fixture_packages["dynamic"])
    expect_error(
        lambda: model(torch.zeros(s0, 8), torch.zeros(y_rows, 8)), "INVALID_ARGUMENT", text
    )
    expect_error(lambda: model.plan([(s0, 8), (y_rows, 8)]), "INVALID_ARGUMENT", text)


def test_dynamic_static_dim_refused(fixture_packages: Any) -> None:
    import torch

    model = load(fixture_packages["dynamic"])
    expect_error(
        lambda: model(torch.zeros(4, 9), torch.zeros(8, 8)),
        "INVALID_ARGUMENT",
        'input 0 "x": expected float32[s0, 8], got float32[4, 9]',
    )


def test_dynamic_concurrent_mixed_sizes(fixture_packages: Any) -> None:
    """Per-run workspaces of different sizes, concurrently."""
    model = load(fixture_packages["dynamic"])

    def worker(t: int) -> None:
        rng = np.random.default_rng(t)
        for _ in range(50):
            s0 = int(rng.integers(2, 65))
            x = rng.standard_normal((s0, 8)).astype(np.float32)
            y = rng.standard_normal((2 * s0, 8)).astype(np.float32)
            (z,) = model(tensor(x), tensor(y))
            if not np.array_equal(z.numpy(), fp.dynamic_reference(x, y)):
                raise AssertionError(f"wrong output for s0={s0}")

    assert run_threads(8, worker) == []


# --------------------------------------------------------------------------- #
# mutating: inputs written in place                                             #
# --------------------------------------------------------------------------- #


def test_mutated_input_written_in_place(fixture_packages: Any) -> None:
    model = load(fixture_packages["mutating"])
    assert model.input_specs[0].mutated
    x0 = np.arange(16, dtype=np.float32)
    x = tensor(x0)
    (out,) = model(x)
    np.testing.assert_array_equal(x.numpy(), x0 + 1)
    np.testing.assert_array_equal(out.numpy(), (x0 + 1) * 2)
    (out,) = model(x)
    np.testing.assert_array_equal(x.numpy(), x0 + 2)
    np.testing.assert_array_equal(out.numpy(), (x0 + 2) * 2)


def test_mutated_non_contiguous_input_copied_back(fixture_packages: Any) -> None:
    import torch

    model = load(fixture_packages["mutating"])
    base = torch.arange(32, dtype=torch.float32)
    x = base[::2]
    assert not x.is_contiguous()
    (out,) = model(x)
    expected = torch.arange(32, dtype=torch.float32)
    expected[::2] += 1
    assert torch.equal(base, expected)  # odd elements untouched, even ones incremented
    assert torch.equal(out, expected[::2] * 2)


# --------------------------------------------------------------------------- #
# stateful: state constants, serialisation, state across updates              #
# --------------------------------------------------------------------------- #


def test_state_accumulates_from_package_value(fixture_packages: Any) -> None:
    model = load(fixture_packages["stateful"])
    ones = np.ones(4, np.float32)
    (out,) = model(tensor(ones))
    np.testing.assert_array_equal(out.numpy(), fp.STATEFUL_INITIAL + 1)
    (out,) = model(tensor(2 * ones))
    np.testing.assert_array_equal(out.numpy(), fp.STATEFUL_INITIAL + 3)


def test_state_is_private_per_loaded_model(fixture_packages: Any) -> None:
    a = load(fixture_packages["stateful"])
    b = load(fixture_packages["stateful"])
    ones = np.ones(4, np.float32)
    for _ in range(3):
        a(tensor(ones))
    (out,) = b(tensor(ones))
    np.testing.assert_array_equal(out.numpy(), fp.STATEFUL_INITIAL + 1)
    (out,) = a(tensor(ones))
    np.testing.assert_array_equal(out.numpy(), fp.STATEFUL_INITIAL + 4)


def test_stateful_runs_serialised(fixture_packages: Any) -> None:
    """8 threads x 25 runs: no overlap inside run() and not one update lost."""
    model = load(fixture_packages["stateful"])
    runs = 25

    def worker(t: int) -> None:
        x = np.array([1, t, 2 * t, 1000], dtype=np.float32)
        for _ in range(runs):
            model(tensor(x))

    assert run_threads(8, worker) == []
    (final,) = model(tensor(np.zeros(4, np.float32)))
    ts = np.arange(8)
    added = runs * np.array([8, ts.sum(), 2 * ts.sum(), 8000], dtype=np.float32)
    np.testing.assert_array_equal(final.numpy(), fp.STATEFUL_INITIAL + added)


def test_state_survives_update_constants(fixture_packages: Any) -> None:
    model = load(fixture_packages["stateful"])
    ones = np.ones(4, np.float32)
    model(tensor(ones))
    model.update_constants({"scale": tensor(np.full(4, 10.0, np.float32))})
    (out,) = model(tensor(ones))
    np.testing.assert_array_equal(out.numpy(), fp.STATEFUL_INITIAL + 1 + 10)


def test_stateful_serialised_across_update(fixture_packages: Any) -> None:
    """Runs on the old and new instance share the state and one mutex."""
    model = load(fixture_packages["stateful"])
    stop = threading.Event()

    def runner(_: int) -> None:
        for _ in range(40):
            model(tensor(np.ones(4, np.float32)))

    def updater() -> None:
        while not stop.is_set():
            model.update_constants({"scale": tensor(np.ones(4, np.float32))})

    th = threading.Thread(target=updater)
    th.start()
    try:
        failures = run_threads(4, runner)
    finally:
        stop.set()
        th.join()
    assert failures == []
    (final,) = model(tensor(np.zeros(4, np.float32)))
    np.testing.assert_array_equal(final.numpy(), fp.STATEFUL_INITIAL + 160)


# --------------------------------------------------------------------------- #
# barrier and parallel: concurrency and the host's parallel_for                 #
# --------------------------------------------------------------------------- #


def test_barrier_8_runs_overlap(fixture_packages: Any) -> None:
    """8 runs are inside run() at once; a global lock would time out after 20 s."""
    model = load(fixture_packages["barrier"])
    for round_ in range(2):
        results: dict[int, np.ndarray] = {}

        def worker(t: int, results: dict[int, np.ndarray] = results) -> None:
            (out,) = model(tensor(np.full(4, float(t), np.float32)))
            results[t] = out.numpy()

        assert run_threads(8, worker, timeout=60) == [], f"round {round_}"
        for t in range(8):
            np.testing.assert_array_equal(results[t], np.full(4, t + 1.0, np.float32))


def test_parallel_for(fixture_packages: Any) -> None:
    model = load(fixture_packages["parallel"])
    x = np.linspace(-8, 8, 4096, dtype=np.float32)
    for num_threads in (0, 1, 2, 8):
        y, z = model.run([tensor(x)], num_threads=num_threads)
        np.testing.assert_array_equal(y.numpy(), 3 * x)
        np.testing.assert_array_equal(z.numpy(), x + 1)


def test_parallel_8_threads_x_200_runs(fixture_packages: Any) -> None:
    """Concurrent runs sharing one thread pool, every output checked."""
    model = load(fixture_packages["parallel"])

    def worker(t: int) -> None:
        rng = np.random.default_rng(t)
        for i in range(200):
            x = rng.standard_normal(4096).astype(np.float32)
            y, z = model(tensor(x))
            if not (np.array_equal(y.numpy(), 3 * x) and np.array_equal(z.numpy(), x + 1)):
                raise AssertionError(f"run {i}: wrong output")

    assert run_threads(8, worker, timeout=300) == []


# --------------------------------------------------------------------------- #
# kernel_error: an index error inside a kernel                                  #
# --------------------------------------------------------------------------- #


def test_kernel_index_error_is_an_error(fixture_packages: Any) -> None:
    model = load(fixture_packages["kernel_error"])
    bad = np.array([0, 1, 2, 10, 3, 0], dtype=np.int64)
    expect_error(
        lambda: model(tensor(bad)),
        "OUT_OF_RANGE",
        'embedding:0: index 10 out of range [0, 4) for input "idx"',
    )
    expect_error(
        lambda: model(tensor(np.array([-1, 0, 0, 0, 0, 0], np.int64))),
        "OUT_OF_RANGE",
        "embedding:0: index -1 out of range [0, 4)",
    )
    good = np.array([3, 2, 1, 0, 1, 2], dtype=np.int64)
    (out,) = model(tensor(good))
    np.testing.assert_array_equal(out.numpy(), fp.KERNEL_ERROR_TABLE[good])


def test_kernel_errors_under_concurrency(fixture_packages: Any) -> None:
    """Errors in some runs do not disturb concurrent good runs."""
    model = load(fixture_packages["kernel_error"])
    err_type = runtime().AotcError

    def worker(t: int) -> None:
        for i in range(100):
            if (t + i) % 3 == 0:
                try:
                    model(tensor(np.array([0, 0, 0, 0, 0, 4 + i], np.int64)))
                except err_type as e:
                    assert e.code == "OUT_OF_RANGE", e.message
                else:
                    raise AssertionError("a bad index was accepted")
            else:
                idx = np.array([(t + i + k) % 4 for k in range(6)], np.int64)
                (out,) = model(tensor(idx))
                assert np.array_equal(out.numpy(), fp.KERNEL_ERROR_TABLE[idx])

    assert run_threads(8, worker) == []


# --------------------------------------------------------------------------- #
# entry_reader: host->get_entry                                                 #
# --------------------------------------------------------------------------- #


def test_get_entry_relative_to_model_folder(fixture_packages: Any) -> None:
    """create() reads files/table.bin; missing and escaping names are refused."""
    model = load(fixture_packages["entry_reader"])
    x = np.arange(4, dtype=np.float32)
    (out,) = model(tensor(x))
    np.testing.assert_array_equal(out.numpy(), x + fp.ENTRY_READER_TABLE)


def test_create_error_reaches_the_caller(fixture_packages: Any) -> None:
    """A create() failure is a load error carrying the library's message."""
    path = fixture_packages.build_variant("entry_reader", "entry_reader_short", table=b"abc")
    expect_error(
        lambda: load(path),
        "INVALID_ARGUMENT",
        'entry "files/table.bin" has 3 bytes, expected 16',
    )


# --------------------------------------------------------------------------- #
# Libraries refused at load                                                     #
# --------------------------------------------------------------------------- #


def test_future_major_refused(fixture_packages: Any) -> None:
    expect_error(
        lambda: load(fixture_packages["future_abi"]),
        "INCOMPATIBLE",
        "model library ABI 2.0 is not supported by this runtime (model ABI 1.0)",
    )


def test_future_major_in_manifest_refused(fixture_packages: Any) -> None:
    """Manifest and library both claim 2.0: refused (perhaps before dlopen), naming both."""
    path = fixture_packages.build_variant(
        "future_abi", "future_abi_manifest", abi={"major": 2, "minor": 0}
    )
    err = expect_error(lambda: load(path), "INCOMPATIBLE", "2.0")
    assert "1.0" in err.message, err.message


def test_future_minor_refused(fixture_packages: Any) -> None:
    expect_error(
        lambda: load(fixture_packages["future_minor"]),
        "INCOMPATIBLE",
        "model library ABI 1.1 is not supported by this runtime (model ABI 1.0)",
    )


def test_small_description_struct_refused(fixture_packages: Any) -> None:
    err = expect_error(
        lambda: load(fixture_packages["bad_struct"]), "INCOMPATIBLE", "aotc_model_description_t"
    )
    assert "128" in err.message and "136" in err.message, err.message


def test_wrong_tensor_size_refused(fixture_packages: Any) -> None:
    err = expect_error(
        lambda: load(fixture_packages["bad_tensor_size"]), "INCOMPATIBLE", "aotc_abi_tensor_t"
    )
    assert "280" in err.message and "272" in err.message, err.message


def test_missing_symbol_refused(fixture_packages: Any) -> None:
    expect_error(
        lambda: load(fixture_packages["missing_symbol"]), "INCOMPATIBLE", "aotc_model_plan"
    )


def test_runtime_reports_abi_version(native_build: Any) -> None:
    import ctypes

    lib = ctypes.CDLL(str(native_build.runtime_library))
    lib.aotc_model_abi_version.restype = ctypes.c_uint32
    assert lib.aotc_model_abi_version() == (1 << 16) | 0


# --------------------------------------------------------------------------- #
# mlp_demo and the demo script                                                  #
# --------------------------------------------------------------------------- #


def test_mlp_demo_batches(fixture_packages: Any) -> None:
    import packager

    path = fixture_packages["mlp_demo"]
    model = load(path)
    weights = fp.mlp_weights()
    for batch in (1, 2, 5, 64):
        x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
        (out,) = model(tensor(x))
        np.testing.assert_allclose(out.numpy(), fp.mlp_reference(x, weights), rtol=1e-5, atol=1e-6)
    import torch

    expect_error(
        lambda: model(torch.zeros(65, 8)),
        "INVALID_ARGUMENT",
        'input 0 "x" dim 0 (s0): 65 is outside [1, 64]',
    )
    assert packager.verify_package(path) == []


def _as_array(sample: tuple[str, tuple[int, ...], bytes]) -> np.ndarray:
    dtype, shape, data = sample
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)


def test_make_demo_package_script(native_build: Any, tmp_path: Path) -> None:
    """scripts/make_demo_package.py (torch weights, eager samples) runs in the runtime."""
    pytest.importorskip("torch")
    import packager

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_demo_package.py"
    out = tmp_path / "mlp_demo.pt2"
    cmd = [sys.executable, str(script), "--library", str(native_build.fixture_library("mlp_demo"))]
    proc = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert packager.verify_package(out) == []
    samples = packager.read_package(out).samples("mlp_demo")
    model = load(out)
    (got,) = model(*[tensor(_as_array(a)) for a in samples.inputs])
    np.testing.assert_allclose(got.numpy(), _as_array(samples.outputs[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["affine", "dynamic", "parallel", "kernel_error", "mlp_demo"])
def test_aotc_run_checks_samples(native_build: Any, fixture_packages: Any, name: str) -> None:
    """aotc-run runs each package's sample inputs and compares the eager outputs."""
    exe = native_build.binary("aotc-run")
    proc = subprocess.run(
        [str(exe), str(fixture_packages[name]), "-n", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
