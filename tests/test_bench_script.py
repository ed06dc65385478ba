"""scripts/bench.py's plumbing, without timing anything: how it reports
errors and skips, that an AOTInductor crash is recorded rather than fatal,
and, for --device cuda on a machine without a GPU, the pure parts of the GPU
run (sizes, input rotation, ceiling arithmetic, verdicts, the table, the
JSON, the chart) and its refusal. (Its figures live in docs/performance.md;
no test asserts a timing.)"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("aotc_bench_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ROW = {
    "model": "m",
    "eager": {"median_ms": 2.0},
    "compile": {"compile_s": 1.5, "median_ms": 1.0},
    "aotc": {"compile_s": 0.5, "load_s": 0.002, "median_ms": 0.5, "package_bytes": 4096},
    "aoti": {"error": "exit -11: Segmentation fault"},
}


def test_row_shows_ratios_errors_and_skips(bench, capsys) -> None:
    bench.print_row(ROW)
    skipped = {**ROW, "model": "n", "aoti": {"skipped": "--quick"}}
    bench.print_row(skipped)
    first, second = capsys.readouterr().out.splitlines()
    cells = first.split()
    assert cells[:5] == ["m", "2.000", "1.000", "error", "0.500"]
    assert cells[5:7] == ["0.25", "0.50"]  # aotc / eager, aotc / compile
    assert cells[-2:] == ["4", "error"]  # aotc KiB, AOTInductor's failed build
    assert second.split()[3] == "skip"
    notes = bench.notes([ROW, skipped, {**skipped, "model": "o"}])
    assert notes == ["m aoti: exit -11: Segmentation fault", "aoti: --quick"]


def test_aoti_failure_is_recorded(bench) -> None:
    """The AOTInductor worker dies (no such model): the parent records it."""
    result = bench.bench_aoti("no_such_model", quick=True, repeats=1, threads=1)
    assert set(result) == {"error"} and result["error"].startswith("exit ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_cuda_without_a_gpu_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no CUDA GPU visible to torch" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_cuda_aoti_worker_is_refused_without_a_gpu(bench) -> None:
    """The cuda AOTInductor worker goes through the same subprocess path:
    its failure here (no GPU) is recorded, not fatal."""
    result = bench.bench_aoti("gpt", quick=False, repeats=1, threads=1, device="cuda")
    assert set(result) == {"error"} and result["error"].startswith("exit 2")


# --------------------------------------------------------------------------- #
# --device cuda, its pure parts                                                #
# --------------------------------------------------------------------------- #


def test_cuda_sizes_are_issue_11s(bench) -> None:
    (gpt,) = bench.cuda_input_specs("gpt")
    assert gpt.shape == (8, 1024) and gpt.dtype == "int64" and gpt.high == 8192
    assert gpt.shape[1] <= bench.CUDA_SIZES["gpt"]["seq"]  # within block_size
    sizes = bench.CUDA_SIZES["gpt"]
    assert (sizes["d_model"], sizes["n_head"]) == (1024, 16)
    assert bench.cuda_input_specs("cnn")[0].shape == (32, 3, 224, 224)
    assert bench.cuda_input_specs("mlp")[0].shape == (256, 4096)
    assert bench.cuda_input_specs("transformer")[0].shape == (8, 1024, 1024)
    for name in ("cnn", "mlp", "transformer"):
        assert bench.cuda_input_specs(name)[0].dtype == "bfloat16"
    # Every example has cuda sizes, and every cuda model is an example.
    assert sorted(bench.CUDA_SIZES) == sorted(m.name for m in bench.examples())
    models = bench.all_models(quick=False, device="cuda")
    assert [m.name for m in models] == sorted(bench.CUDA_SIZES)
    assert {m.dtype for m in models} == {"bfloat16"}
    with pytest.raises(KeyError):
        bench.cuda_input_specs("hf_gpt2")


def test_cuda_modules_build_at_their_sizes(bench, monkeypatch) -> None:
    """The modules cuda_module builds (on the meta device here) take the
    inputs of cuda_input_specs: shapes only, no real compute."""
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    expected = {
        "gpt": (8, 1024, 8192),
        "cnn": (32, 10),
        "mlp": (256, 4096),
        "transformer": (8, 1024, 1024),
    }
    for name, shape in expected.items():
        with torch.device("meta"):
            module = bench.cuda_module(name)
        assert not module.training
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
        with torch.no_grad():
            inputs = bench.random_inputs(bench.cuda_input_specs(name), device="meta")
            assert module(*inputs).shape == shape, name
    with torch.device("meta"):
        weights = sum(p.numel() for p in bench.cuda_module("gpt").parameters())
    assert 50e6 < weights < 70e6  # a realistic small GPT: 4 layers, tied embeddings


def test_rotation_overflows_l2(bench) -> None:
    l2 = 60 << 20
    for name in bench.CUDA_SIZES:
        set_bytes = sum(spec.nbytes for spec in bench.cuda_input_specs(name))
        sets = bench.rotation_sets(set_bytes, l2)
        assert sets >= 3 and sets * set_bytes > l2, name
    assert bench.rotation_sets(1 << 30, l2) == 3  # huge sets: at least 3, as on cpu
    assert bench.rotation_sets(1, l2) == bench.MAX_SETS  # tiny ones: bounded
    assert bench.rotation_sets(64 << 10, l2) == 1920  # gpt's 8 x 1024 token ids


def test_arch_name(bench) -> None:
    assert bench.arch_name((9, 0)) == "sm_90"
    assert bench.arch_name((8, 6)) == "sm_86"
    assert bench.arch_name((10, 0)) == "sm_100"


def test_ceiling_arithmetic(bench) -> None:
    assert bench.gemm_flops(8192, 8192, 8192) == 2 * 8192**3
    moved = bench.pointwise_bytes(bench.POINTWISE_SHAPE, bench.POINTWISE_DTYPE)
    assert moved == 3 * 16384 * 16384 * 2 and moved >= 1e9  # issue 11: >= 1 GB
    assert bench.per_second(1e12, 1000.0) == pytest.approx(1e12)
    assert bench.per_second(2 * 8192**3, 1.0) == pytest.approx(1.0995e15, rel=1e-3)
    record = bench.kernel_record(rate=3.0e12, ceiling=4.0e12, target=0.70)
    assert record["ratio"] == pytest.approx(0.75) and record["verdict"] == "PASS"
    record = bench.kernel_record(rate=2.0e12, ceiling=4.0e12, target=0.70)
    assert record["verdict"] == "MISS"
    record = bench.kernel_record(rate=2.0e12, ceiling=None, target=0.70)
    assert record["ratio"] is None and record["verdict"] == "-"


def test_verdicts(bench) -> None:
    assert bench.verdict(0.7, 0.7, at_most=False) == "PASS"
    assert bench.verdict(0.69, 0.7, at_most=False) == "MISS"
    assert bench.verdict(1.0, 1.0, at_most=True) == "PASS"
    assert bench.verdict(1.21, 1.2, at_most=True) == "MISS"
    assert bench.verdict(None, 1.2, at_most=True) == "-"
    assert bench.verdict(math.nan, 1.2, at_most=True) == "-"
    targets = bench.model_targets(ROW)  # aotc 0.5 ms, eager 2.0, compile 1.0
    assert targets["vs_eager"] == {"ratio": 0.25, "target": 1.0, "verdict": "PASS"}
    assert targets["vs_compile"]["verdict"] == "PASS"
    slow = {**ROW, "aotc": {"median_ms": 1.3}}
    assert bench.model_targets(slow)["vs_compile"]["verdict"] == "MISS"
    broken = {**ROW, "aotc": {"error": "x"}}
    assert bench.model_targets(broken)["vs_eager"] == {
        "ratio": None,
        "target": 1.0,
        "verdict": "-",
    }


def test_output_check(bench) -> None:
    x = torch.randn(64, 64, dtype=torch.bfloat16)
    assert bench.check_output(x, x) == 0.0
    assert bench.check_output(x * 1.01, x) == pytest.approx(0.01, rel=0.3)
    with pytest.raises(AssertionError, match="differs from eager"):
        bench.check_output(x + 1.0, x)
    with pytest.raises(AssertionError):
        bench.check_output(torch.full_like(x, math.nan), x)
    with pytest.raises(AssertionError):
        bench.check_output(x[:32], x)  # a shape mismatch
    assert bench.same(x, x, "cuda") == {"max_rel_err": 0.0}
    assert bench.same(x.float(), x.float()) == {}  # cpu: assert_close, nothing recorded


def test_aoti_timeout_follows_the_budget(bench) -> None:
    assert bench.aoti_timeout_s("cpu", 1000.0, None, 3) == bench.AOTI_TIMEOUT_S["cpu"]
    assert bench.aoti_timeout_s("cuda", 0.0, 420.0, 0) == bench.AOTI_TIMEOUT_S["cuda"]
    # 420 - 200 - 40 * 2 = 140 s left: the worker gets that.
    assert bench.aoti_timeout_s("cuda", 200.0, 420.0, 2) == pytest.approx(140.0)
    assert bench.aoti_timeout_s("cuda", 400.0, 420.0, 0) is None  # under AOTI_MIN_S


CUDA_ROW = {
    **ROW,
    "model": "gpt",
    "dtype": "bfloat16",
    "aoti": {"error": "exit -6: terminate called after throwing an instance of ..."},
}
CEILINGS = {
    "copy": {"bytes": 2 << 30, "median_ms": 0.5, "bytes_per_s": 4.3e12},
    "matmul": {"shape": [8192] * 3, "dtype": "bfloat16", "median_ms": 1.6, "flops_per_s": 7e14},
}
CHECKS = {
    "gemm": {"dtype": "bfloat16", **{"rate": 5.6e14, "ratio": 0.8, "target": 0.7}},
    "pointwise": {"error": "AotcError: no kernel"},
}
CHECKS["gemm"]["verdict"] = "PASS"


def test_cuda_table(bench, capsys) -> None:
    columns = bench.columns_for("cuda")
    assert bench.columns_for("cpu") == bench.COLUMNS  # cpu: the table as it was
    bench.print_header(columns)
    bench.print_row(CUDA_ROW, columns=columns)
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["model", "dtype", "eager"]
    assert row.split()[:6] == ["gpt", "bfloat16", "2.000", "1.000", "error", "0.500"]
    assert len(header) == len(row)
    lines = bench.ceiling_lines(CEILINGS, CHECKS)
    text = "\n".join(lines)
    assert "4.30 TB/s" in text and "700.0 TFLOP/s" in text
    (gemm,) = [line for line in lines if "GEMM" in line]
    assert "560.0 TFLOP/s" in gemm and "0.80 of torch.matmul" in gemm and gemm.endswith("PASS")
    (pointwise,) = [line for line in lines if "pointwise" in line]
    assert "error: AotcError: no kernel" in pointwise
    # Ceilings that could not be measured: said so, no crash.
    lines = bench.ceiling_lines({"copy": {"error": "OOM"}, "matmul": {"error": "OOM"}}, {})
    assert sum("error: OOM" in line for line in lines) == 2
    targets = bench.target_lines([CUDA_ROW, {**CUDA_ROW, "model": "mlp", "aotc": {"error": "x"}}])
    assert targets[1].split() == ["gpt", "(bfloat16)", "0.25", "PASS", "0.50", "PASS"]
    assert targets[2].split() == ["mlp", "(bfloat16)", "-", "-", "-", "-"]


def test_cuda_json_and_chart(bench, tmp_path) -> None:
    env = {"date": "today", "gpu": "NVIDIA H200"}
    report = bench.report(env, [CUDA_ROW], CEILINGS, CHECKS)
    again = json.loads(json.dumps(report))
    assert again["results"][0]["dtype"] == "bfloat16"
    assert again["ceilings"]["copy"]["bytes_per_s"] == 4.3e12
    assert again["kernel_checks"]["gemm"]["verdict"] == "PASS"
    assert set(bench.report(env, [ROW])) == {"environment", "results"}  # cpu: as it was
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    assert bench.ceiling_title(CEILINGS) == "copy 4.30 TB/s, matmul 700 TFLOP/s"
    assert bench.ceiling_title({}) == "copy -, matmul -"
    bench.chart([CUDA_ROW], path, CHECKS, CEILINGS)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_aotc_builds_get_a_fresh_triton_cache(bench, monkeypatch) -> None:
    monkeypatch.setenv("TRITON_CACHE_DIR", "/somewhere")
    with bench.fresh_triton_cache():
        inside = Path(os.environ["TRITON_CACHE_DIR"])
        assert inside.is_dir() and not any(inside.iterdir())
    assert os.environ["TRITON_CACHE_DIR"] == "/somewhere" and not inside.exists()
    monkeypatch.delenv("TRITON_CACHE_DIR")
    with bench.fresh_triton_cache():
        pass
    assert "TRITON_CACHE_DIR" not in os.environ


def test_cuda_run_end_to_end_with_the_gpu_parts_stubbed(bench, monkeypatch, tmp_path, capsys):
    """main() --device cuda with every GPU call replaced: the flow from the
    ceilings to the table, the targets, the JSON and the chart."""
    calls = []

    def system(name, result):
        def bench_system(model, rotation, repeats, device="cpu"):
            calls.append((name, device, len(rotation), repeats))
            return dict(result)

        return bench_system

    def aoti(name, quick, repeats, threads, device="cpu", timeout_s=None):
        calls.append(("aoti", device, timeout_s))
        return {"error": "exit -11: Segmentation fault"}

    def tiny() -> list:
        return [
            bench.Model(name, lambda: torch.nn.Identity(), lambda: (torch.ones(4),), "bfloat16")
            for name in ("gpt", "mlp")
        ]

    # main() sets these: monkeypatch puts them back afterwards.
    monkeypatch.setenv("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "0")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "before"))
    monkeypatch.setattr(bench, "cuda_refusal", lambda: None)
    monkeypatch.setattr(bench, "environment", lambda threads, device: {"gpu": "stub"})
    monkeypatch.setattr(bench, "l2_bytes", lambda: 64)  # 16-byte sets: 8 of them
    monkeypatch.setattr(bench, "cuda_models", tiny)
    monkeypatch.setattr(bench, "measure_ceilings", lambda repeats: CEILINGS)
    monkeypatch.setattr(bench, "kernel_checks", lambda ceilings, repeats: CHECKS)
    monkeypatch.setattr(bench, "bench_eager", system("eager", {"median_ms": 2.0}))
    monkeypatch.setattr(bench, "bench_compile", system("compile", {"median_ms": 1.0}))
    monkeypatch.setattr(bench, "bench_aotc", system("aotc", {"median_ms": 1.1}))
    monkeypatch.setattr(bench, "bench_aoti", aoti)
    out = tmp_path / "bench.json"
    argv = ["bench.py", "--device", "cuda", "--json", str(out), "--only", "mlp"]
    monkeypatch.setattr(sys, "argv", argv)
    assert bench.main() == 0
    assert calls[:3] == [(s, "cuda", 8, 50) for s in ("eager", "compile", "aotc")]
    assert calls[3] == ("aoti", "cuda", bench.AOTI_TIMEOUT_S["cuda"])
    printed = capsys.readouterr()
    assert "mlp: aotc" in printed.err  # progress per model
    text = printed.out
    assert "0.80 of torch.matmul" in text and "mlp aoti: exit -11" in text
    (target,) = [line for line in text.splitlines() if line.strip().startswith("mlp (")]
    assert target.split()[2:] == ["0.55", "PASS", "1.10", "PASS"]
    saved = json.loads(out.read_text())
    assert [row["model"] for row in saved["results"]] == ["mlp"]
    assert saved["results"][0]["input_sets"] == 8
    assert saved["results"][0]["targets"]["vs_compile"]["verdict"] == "PASS"
    assert saved["ceilings"] == CEILINGS and saved["kernel_checks"] == CHECKS
    fresh = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])  # a fresh one, removed after the run
    assert fresh != tmp_path / "before" and not fresh.exists()


def test_dynamic_batch_comparison(bench) -> None:
    """[Note: dynamic against static]: the shared batch Dim and the verdicts."""
    x, y = torch.randn(4, 3), torch.randn(4, 5)
    shapes = bench.batch_dynamic_shapes((x, y))
    assert shapes is not None and shapes[0][0] is shapes[1][0]
    assert shapes[0][0].min == 1 and shapes[0][0].max == 8
    assert bench.batch_dynamic_shapes((torch.randn(1, 3),)) is None  # export specialises 1
    assert bench.batch_dynamic_shapes((x, torch.randn(3, 5))) is None  # no shared batch
    rows = [
        {"model": "mlp", "aotc": {"median_ms": 1.0}, "aotc_dynamic": {"median_ms": 1.05}},
        {"model": "gpt", "aotc": {"median_ms": 1.0}, "aotc_dynamic": {"median_ms": 1.2}},
        {"model": "cnn", "aotc": {"median_ms": 1.0}, "aotc_dynamic": {"error": "Boom: x"}},
        {"model": "hf_bert", "aotc": {"median_ms": 1.0}},
    ]
    lines = bench.dynamic_lines(rows)
    assert lines[0].startswith("dynamic batch against static")
    assert "1.05" in lines[1] and lines[1].endswith("PASS")
    assert "1.20" in lines[2] and lines[2].endswith("MISS")
    assert "error: Boom: x" in lines[3] and len(lines) == 4
