"""The `aotc` command line (aot/cli.py): export, inspect, run, verify,
--version, --cmake-prefix-path; exit codes and error output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fixture_packages as fp  # tests/ is on sys.path
import numpy as np
import pytest

from aot import __version__
from aot.cli import TOLERANCES, cmake_prefix_path, main

REPO_ROOT = Path(__file__).resolve().parent.parent


def _aotc(args: list[str], *, block_torch: bool = False, env: dict[str, str] | None = None):
    """Runs `aotc ARGS` in a child process (torch made unimportable if asked)."""
    code = f"""
        import sys
        {"sys.modules['torch'] = None" if block_torch else ""}
        from aot.cli import main
        sys.exit(main({args!r}))
    """
    full_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def altered_mlp(native_build, tmp_path_factory) -> Path:
    """mlp_demo whose stored eager output is off by 0.5 in one element."""
    weights = fp.mlp_weights()
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    expected = fp.mlp_reference(x, weights)
    expected[2, 1] += 0.5
    out = tmp_path_factory.mktemp("altered") / "mlp_altered.pt2"
    return fp.write_mlp_demo(out, native_build.fixture_library("mlp_demo"), weights, x, expected)


# --------------------------------------------------------------------------- #
# inspect                                                                      #
# --------------------------------------------------------------------------- #


def test_inspect_text(fixture_packages, capsys):
    assert main(["inspect", str(fixture_packages["mlp_demo"])]) == 0
    out = capsys.readouterr().out
    assert "model mlp_demo" in out
    assert "x: float32[s0, 8]" in out
    assert "mlp_demo/data/aotc/mlp_demo/model.so" in out


def test_inspect_json(fixture_packages, capsys):
    assert main(["inspect", "--json", str(fixture_packages["affine"])]) == 0
    info = json.loads(capsys.readouterr().out)
    model = info["models"]["affine"]
    assert model["inputs"] == [{"name": "x", "dtype": "float32", "shape": [4, 8]}]
    assert [o["name"] for o in model["outputs"]] == ["y", "r"]
    assert any(e["name"].endswith("/model.so") for e in info["entries"])


def test_inspect_is_fast_and_never_imports_torch(fixture_packages):
    pkg = str(fixture_packages["mlp_demo"])
    start = time.perf_counter()
    proc = _aotc(["inspect", pkg], block_torch=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "model mlp_demo" in proc.stdout
    proc = _aotc(["inspect", "--json", pkg], block_torch=True)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    # Interpreter start included; the command itself is well under a second.
    assert elapsed < 3.0, elapsed


def test_inspect_in_process_under_a_second(fixture_packages, capsys):
    start = time.perf_counter()
    assert main(["inspect", str(fixture_packages["mlp_demo"])]) == 0
    assert time.perf_counter() - start < 1.0


def test_inspect_errors(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "absent.pt2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aotc: error: ") and "absent.pt2" in err
    (tmp_path / "junk.pt2").write_bytes(b"not a zip at all")
    assert main(["inspect", str(tmp_path / "junk.pt2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aotc: error: ") and "Traceback" not in err


# --------------------------------------------------------------------------- #
# verify                                                                       #
# --------------------------------------------------------------------------- #


def test_verify_ok(fixture_packages, capsys):
    assert main(["verify", str(fixture_packages["affine"])]) == 0
    assert capsys.readouterr().out.strip().endswith(": OK")


def test_verify_finds_a_corrupted_weight(fixture_packages, tmp_path, capsys):
    bad = tmp_path / "bad.pt2"
    entry = fp.corrupt_entry(Path(fixture_packages["affine"]), "data/weights/affine/W", bad)
    assert main(["verify", str(bad)]) == 1
    captured = capsys.readouterr()
    assert entry in captured.out
    assert "problem" in captured.err


def test_verify_without_torch(fixture_packages):
    proc = _aotc(["verify", str(fixture_packages["affine"])], block_torch=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- #
# run                                                                          #
# --------------------------------------------------------------------------- #


def test_run_pass(fixture_packages, capsys):
    assert main(["run", str(fixture_packages["mlp_demo"]), "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "model mlp_demo on cpu" in out
    assert 'output 0 "out": float32[4, 4]  max_abs_err ' in out
    assert "(atol 0.0001, rtol 0.0001)  PASS" in out
    assert "latency: median" in out and "over 3 runs (2 warmup)" in out
    assert out.strip().endswith("PASS")


def test_run_fail_on_altered_outputs(altered_mlp, capsys):
    assert main(["run", str(altered_mlp), "-n", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    line = next(ln for ln in out.splitlines() if 'output 0 "out"' in ln)
    assert "max_abs_err 0.5" in line
    assert line.endswith("FAIL (1 of 16 elements out of tolerance)")
    # A loose enough tolerance passes it.
    assert main(["run", str(altered_mlp), "-n", "0", "--atol", "0.6"]) == 0


def test_run_in_a_subprocess(native_build, fixture_packages, altered_mlp):
    env = {"AOTC_RUNTIME_LIBRARY": str(native_build.runtime_library)}
    proc = _aotc(["run", str(fixture_packages["mlp_demo"]), "-n", "2", "--threads", "1"], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("PASS")
    proc = _aotc(["run", str(altered_mlp), "-n", "0"], env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_run_every_sampled_fixture(fixture_packages, capsys):
    for name in ("affine", "dynamic", "mutating", "parallel", "kernel_error", "stateful"):
        assert main(["run", str(fixture_packages[name]), "-n", "0"]) == 0, name
    capsys.readouterr()


def test_run_with_npy_inputs_and_output_dir(fixture_packages, tmp_path, capsys):
    x = fp.affine_input(2)
    np.save(tmp_path / "x.npy", x)
    out_dir = tmp_path / "out"
    args = ["run", str(fixture_packages["affine"]), "-n", "0", "--input", str(tmp_path / "x.npy")]
    assert main([*args, "--output-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert 'output 0 "y": float32[4, 16]' in out and "PASS" not in out
    y, r = fp.affine_reference(x)
    np.testing.assert_array_equal(np.load(out_dir / "output_0.npy"), y)
    np.testing.assert_array_equal(np.load(out_dir / "output_1.npy"), r)


def test_run_errors_exit_2_without_traceback(native_build, fixture_packages, tmp_path):
    env = {"AOTC_RUNTIME_LIBRARY": str(native_build.runtime_library)}
    np.save(tmp_path / "bad.npy", np.zeros((4, 9), dtype=np.float32))
    cases = {
        "no model named 'nope' in the package (it holds: affine)": [
            "run",
            str(fixture_packages["affine"]),
            "--model",
            "nope",
        ],
        'input 0 "x": expected float32[4, 8], got float32[4, 9]': [
            "run",
            str(fixture_packages["affine"]),
            "--input",
            str(tmp_path / "bad.npy"),
        ],
        "model 'barrier' has no sample inputs; pass --input": [
            "run",
            str(fixture_packages["barrier"]),
        ],
        "absent.pt2": ["run", str(tmp_path / "absent.pt2")],
    }
    for message, args in cases.items():
        proc = _aotc(args, env=env)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("aotc: error: "), proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_run_missing_runtime_library(fixture_packages):
    proc = _aotc(
        ["run", str(fixture_packages["affine"])],
        env={"AOTC_RUNTIME_LIBRARY": "/nonexistent/libaotc.so"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "aotc: error: aotc runtime library not found at /nonexistent/libaotc.so; "
        "reinstall with pip install ."
    )


def test_tolerances_cover_every_float_dtype():
    assert set(TOLERANCES) == {"float64", "float32", "float16", "bfloat16"}


# --------------------------------------------------------------------------- #
# export                                                                       #
# --------------------------------------------------------------------------- #


def test_export_then_run(native_build, tmp_path):
    out = tmp_path / "mlp.pt2"
    proc = _aotc(["export", str(REPO_ROOT / "examples" / "mlp.py"), "-o", str(out), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and out.is_file()
    env = {"AOTC_RUNTIME_LIBRARY": str(native_build.runtime_library)}
    proc = _aotc(["run", str(out), "-n", "0"], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("PASS")


_UNSUPPORTED_MODEL = """\
import torch


class Bad(torch.nn.Module):
    def forward(self, x):
        y = x + 1
        return torch.linalg.svdvals(y)


def get_model():
    return Bad().eval()


def get_example_inputs():
    return (torch.randn(4, 4),)
"""


def test_export_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(_UNSUPPORTED_MODEL)
    (tmp_path / "empty.py").write_text("x = 1\n")
    cases = {
        # UnsupportedOpError: the op, the node, the model.py line.
        "unsupported operator aten._linalg_svd.default": bad,
        "bad.py:7 (return torch.linalg.svdvals(y))": bad,
        # FrontendError: what the model file lacks.
        "get_model": tmp_path / "empty.py",
    }
    for message, model in cases.items():
        proc = _aotc(["export", str(model), "-o", str(tmp_path / "out.pt2")])
        assert proc.returncode == 2, (model, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("aotc: error: "), proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out.pt2").exists()
    proc = _aotc(["export", str(bad), "-o", str(tmp_path / "out.pt2"), "--isa", "native"])
    assert proc.returncode == 2 and "invalid choice: 'native'" in proc.stderr


# --------------------------------------------------------------------------- #
# Top-level flags                                                              #
# --------------------------------------------------------------------------- #


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"aotc {__version__}"


def test_cmake_prefix_path(capsys):
    code = main(["--cmake-prefix-path"])
    captured = capsys.readouterr()
    prefix = cmake_prefix_path()
    if (prefix / "lib" / "cmake" / "aotc").is_dir():
        assert code == 0 and captured.out.strip() == str(prefix)
    else:  # a source checkout: nothing installed under aot/_native
        assert code == 2
        assert captured.err.startswith("aotc: error: no installed aotc runtime under ")


def test_no_command_and_bad_usage(capsys):
    assert main([]) == 2
    assert "usage: aotc" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "aotc: error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# check                                                                        #
# --------------------------------------------------------------------------- #


def test_check_example_passes_with_a_table(native_build, capsys):
    assert main(["check", str(REPO_ROOT / "examples" / "mlp.py"), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "run 1/2:" in out and "run 2/2:" in out and out.rstrip().endswith("PASS")
    header = next(line for line in out.splitlines() if "max_abs_err" in line)
    assert header.split()[:5] == ["output", "dtype", "shape", "max_abs_err", "max_rel_err"]
    rows = [line.split() for line in out.splitlines() if "float32" in line]
    assert len(rows) == 2
    assert all(r[:4] == ["output", "float32", "[8,", "16]"] and r[-1] == "PASS" for r in rows)


def test_check_exit_1_on_a_mismatch(native_build, tmp_path, capsys):
    # Zero tolerance: the compiled GEMM and LayerNorm sum in another order than
    # eager, so float32 results differ in the last bits.
    mlp = str(REPO_ROOT / "examples" / "mlp.py")
    assert main(["check", mlp, "--runs", "1", "--atol", "0", "--rtol", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (" in out and out.rstrip().endswith("FAIL")
    # A model whose eager result really differs from what was compiled: it
    # reads a Python counter that torch.export specialised when it traced.
    model = tmp_path / "drifting.py"
    model.write_text(
        textwrap.dedent(
            """
            import torch

            CALLS = [0]

            class Drifting(torch.nn.Module):
                def forward(self, x, pair):
                    CALLS[0] += 1
                    return {"y": x * CALLS[0], "n": (pair[0] + pair[1]).sum(dim=0)}

            def get_model():
                return Drifting().eval()

            def get_example_inputs():
                return (torch.randn(4), (torch.arange(6).reshape(2, 3), torch.ones(2, 3)))
            """
        )
    )
    assert main(["check", str(model), "--runs", "1", "--seed", "7"]) == 1
    out = capsys.readouterr().out
    table = {line.split()[0]: line for line in out.splitlines() if line.startswith("  output")}
    assert "FAIL" in table["output['y']"] and "float32" in table["output['y']"]
    assert "PASS" in table["output['n']"] and "[3]" in table["output['n']"]


def test_check_errors_exit_2(native_build, tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    assert "missing.py does not exist" in capsys.readouterr().err
    mlp = str(REPO_ROOT / "examples" / "mlp.py")
    if not _has_gpu():
        assert main(["check", mlp, "--device", "cuda"]) == 2
        assert capsys.readouterr().err == (
            "aotc: error: --device cuda needs --arch (e.g. --arch sm_90): there is no GPU here "
            "to read it from\n"
        )
    assert main(["check", mlp, "--device", "cpu", "--arch", "sm_90"]) == 2
    assert "--arch is for --device cuda" in capsys.readouterr().err
    assert main(["check", mlp, "--device", "cuda", "--arch", "sm_42"]) == 2
    assert "--arch sm_42: expected one of sm_80" in capsys.readouterr().err
    assert main(["check", mlp, "--device", "tpu"]) == 2
    assert main(["check", mlp, "--runs", "0"]) == 2


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def test_check_random_inputs_follow_the_examples():
    import torch

    from aot.cli import random_like

    ints = torch.tensor([[3, 9], [5, 4]])
    example = {
        "f": torch.zeros(5, dtype=torch.bfloat16),
        "i": ints,
        "b": torch.zeros(3, dtype=bool),
    }
    fresh = random_like((example, 7, None), torch.Generator().manual_seed(0))
    assert fresh[1:] == (7, None)
    assert fresh[0]["f"].dtype == torch.bfloat16 and bool(fresh[0]["f"].ne(0).any())
    assert fresh[0]["i"].shape == (2, 2) and fresh[0]["i"].dtype == torch.int64
    assert int(fresh[0]["i"].min()) >= 3 and int(fresh[0]["i"].max()) <= 9
    assert fresh[0]["b"].dtype == torch.bool
