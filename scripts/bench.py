#!/usr/bin/env python3
"""Whole models: aotc against eager PyTorch, torch.compile and AOTInductor,
side by side in one run.

For each example (examples/*.py) and each real model it can build (the
Hugging Face models of tests/test_hf_models.py, when transformers is
installed) it measures, in this order and with the same thread count:
- eager: median latency;
- torch.compile (default mode): compile time (the first call) and median;
- AOTInductor (torch._inductor.aoti_compile_and_package + aoti_load_package),
  in a subprocess so that a crash is recorded, not fatal: compile time, load
  time, median, package size;
- aotc: compile time (a fresh build: the compile cache is bypassed), load
  time, median through the C++ runtime, package size.
Every build is cold (no compile cache of either compiler is used). Every
median is taken after warm-up over fresh random inputs, three sets
rotated between calls, and each system's output is checked against eager
first. Prints a table, and writes --json and --chart (a PNG of speedups over
eager per system; needs matplotlib).

    python scripts/bench.py [--quick] [--device cpu|cuda] [--json OUT] [--chart OUT.png]

--quick runs the examples only and leaves the cold AOTInductor builds to the
full run.

--device cuda (issue 11) runs the same systems on the GPU, the examples only,
at the benchmark sizes of CUDA_SIZES (bfloat16), aotc's packages built for
the GPU's own arch. There, times come from CUDA events after warm-up, and the
input sets rotated between calls are enough that together they overflow the
L2 cache (rotation_sets). The run also measures two ceilings, device-to-device
copy bandwidth and torch.matmul's bf16 rate at 8192^3, and checks two aotc
kernels against them: a bf16 GEMM 8192^3 and a fused pointwise model over
more than 1 GB (TARGETS). It prints PASS/MISS against issue 11's targets,
and progress per model on stderr; --budget-s skips the AOTInductor builds
left once that much time has gone, so that the run ends in a bounded time.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aot.options import ExportOptions  # noqa: E402
from aot.testing import AOTCRunnerUtil, median_ms  # noqa: E402

SYSTEMS = ("eager", "compile", "aoti", "aotc")
# How long one AOTInductor worker may take; on cuda also bounded by --budget-s.
AOTI_TIMEOUT_S = {"cpu": 900, "cuda": 300}
# --budget-s on cuda: the AOTInductor builds still to come are skipped once
# this much of the run has gone (the GPU machine's command limit is 10 minutes).
CUDA_BUDGET_S = 420.0
# Time kept per model still to measure after the current one, and the least
# worth giving an AOTInductor build (AOTI_TIMEOUT_S may be cut down to it).
PER_MODEL_RESERVE_S = 40.0
AOTI_MIN_S = 45.0


@dataclass
class Model:
    name: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], tuple[Any, ...]]  # fresh random inputs each call
    dtype: str | None = None  # what the table says (cuda rows); None: as the example is


def _load_example(stem: str) -> ModuleType:
    path = ROOT / "examples" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"example_{stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def examples() -> list[Model]:
    out = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        module = _load_example(path.stem)
        out.append(Model(path.stem, module.get_model, module.get_example_inputs))
    return out


def hf_models() -> list[Model]:
    """The small Hugging Face models the tests check (None without transformers)."""
    try:
        from tests import test_hf_models as hf
    except ImportError as e:
        print(f"(Hugging Face models skipped: {e})", file=sys.stderr)
        return []
    out = []
    for name, (build, names, make_inputs) in hf.MODELS.items():

        def model(build: Callable[[], torch.nn.Module] = build, names: tuple = names):
            torch.manual_seed(0)
            return hf._Keywords(build(), names).eval()

        def inputs(make: Callable = make_inputs) -> tuple[Any, ...]:
            return make(torch.Generator().manual_seed(int(torch.randint(1 << 30, ()))), 2, 16)

        out.append(Model(f"hf_{name}", model, inputs))
    return out


# --------------------------------------------------------------------------- #
# GPU sizes (issue 11)                                                         #
# --------------------------------------------------------------------------- #

# [Note: GPU benchmark sizes]
# The examples' own sizes take microseconds on an H200, which would time
# launch overhead only, so on cuda each example is built at issue 11's sizes:
# gpt with d_model 1024, 16 heads, sequence 1024, batch 8 (4 layers and a
# vocabulary of 8192 keep it a realistic small GPT); cnn at 224x224, batch
# 32; mlp 4096 wide (in, hidden and out), batch 256; the transformer
# example's layer (nn.TransformerEncoderLayer) at gpt's width, sequence and
# batch. All in CUDA_DTYPE. The CPU sizes stay the examples' own. The
# Hugging Face models are cpu only: their tests check them on the GPU.
CUDA_DTYPE = "bfloat16"
CUDA_SIZES: dict[str, dict[str, int]] = {
    "cnn": {"batch": 32, "image": 224},
    "gpt": {"batch": 8, "seq": 1024, "vocab": 8192, "d_model": 1024, "n_head": 16, "n_layer": 4},
    "mlp": {"batch": 256, "width": 4096},
    "transformer": {"batch": 8, "seq": 1024, "d_model": 1024, "n_head": 16, "ffn": 4096},
}
# Input sets rotated between calls: together at least twice the L2 cache
# (rotation_sets), at least 3 as on cpu, at most MAX_SETS (tiny inputs).
MAX_SETS = 2048
DEFAULT_L2_BYTES = 60 << 20  # an H200's; the device's own size when torch tells it


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]
    dtype: str
    high: int = 0  # integer inputs: drawn from [0, high)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * getattr(torch, self.dtype).itemsize


def cuda_input_specs(name: str) -> list[InputSpec]:
    """The inputs of example |name| at its CUDA_SIZES."""
    s = CUDA_SIZES[name]
    if name == "gpt":
        return [InputSpec((s["batch"], s["seq"]), "int64", high=s["vocab"])]
    if name == "cnn":
        return [InputSpec((s["batch"], 3, s["image"], s["image"]), CUDA_DTYPE)]
    if name == "mlp":
        return [InputSpec((s["batch"], s["width"]), CUDA_DTYPE)]
    if name == "transformer":
        return [InputSpec((s["batch"], s["seq"], s["d_model"]), CUDA_DTYPE)]
    raise KeyError(f"no cuda sizes for {name!r}")


def rotation_sets(set_bytes: int, l2_bytes: int = DEFAULT_L2_BYTES) -> int:
    """How many input sets to rotate so that together they overflow the L2
    cache twice over: a set is never still cached from its last use."""
    return max(3, min(MAX_SETS, math.ceil(2 * l2_bytes / max(set_bytes, 1))))


def cuda_module(name: str) -> torch.nn.Module:
    """Example |name| built at its CUDA_SIZES, in CUDA_DTYPE, on the GPU."""
    s = CUDA_SIZES[name]
    torch.manual_seed(0)
    if name == "gpt":
        module = _load_example("gpt").GPT(
            vocab=s["vocab"],
            block_size=s["seq"],
            d_model=s["d_model"],
            n_head=s["n_head"],
            n_layer=s["n_layer"],
        )
    elif name == "cnn":
        module = _load_example("cnn").get_model()  # any image size (adaptive pooling)
    elif name == "mlp":
        module = _load_example("mlp").MLP(s["width"], s["width"], s["width"])
    elif name == "transformer":
        module = torch.nn.TransformerEncoderLayer(
            d_model=s["d_model"],
            nhead=s["n_head"],
            dim_feedforward=s["ffn"],
            dropout=0.1,
            batch_first=True,
        )
    else:
        raise KeyError(f"no cuda sizes for {name!r}")
    return module.to(getattr(torch, CUDA_DTYPE)).eval().cuda()


def random_inputs(specs: list[InputSpec], device: str = "cuda") -> tuple[torch.Tensor, ...]:
    out = []
    for spec in specs:
        if spec.dtype in ("int32", "int64"):
            dtype = getattr(torch, spec.dtype)
            out.append(torch.randint(0, spec.high, spec.shape, dtype=dtype, device=device))
        else:
            out.append(torch.randn(spec.shape, dtype=getattr(torch, spec.dtype), device=device))
    return tuple(out)


def cuda_models() -> list[Model]:
    return [
        Model(
            name,
            lambda name=name: cuda_module(name),
            lambda name=name: random_inputs(cuda_input_specs(name)),
            dtype=CUDA_DTYPE,
        )
        for name in sorted(CUDA_SIZES)
    ]


def all_models(quick: bool, device: str = "cpu") -> list[Model]:
    if device == "cuda":
        return cuda_models()
    return examples() if quick else examples() + hf_models()


def rotation_for(entry: Model, device: str) -> list[tuple[Any, ...]]:
    """The input sets rotated between calls: 3 on cpu (as ever), enough to
    overflow the L2 cache on cuda."""
    first = entry.inputs()
    if device != "cuda":
        return [first] + [entry.inputs() for _ in range(2)]
    set_bytes = sum(t.nbytes for t in _tensors(first))
    return [first] + [entry.inputs() for _ in range(rotation_sets(set_bytes, l2_bytes()) - 1)]


def l2_bytes() -> int:
    size = getattr(
        torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0
    )
    return int(size) or DEFAULT_L2_BYTES


def cuda_arch() -> str:
    return arch_name(torch.cuda.get_device_capability())


def arch_name(capability: tuple[int, int]) -> str:
    """aotc's --arch for a compute capability: (9, 0) -> "sm_90"."""
    major, minor = capability
    return f"sm_{major}{minor}"


# --------------------------------------------------------------------------- #
# Timing and checking                                                          #
# --------------------------------------------------------------------------- #

CUDA_WARMUP = 5


def cuda_median_ms(fn: Callable[[int], object], repeats: int, warmup: int = CUDA_WARMUP) -> float:
    """Median milliseconds of fn(k) on the GPU, from CUDA events around each
    call on the current stream (k counts calls, to rotate inputs). Calls are
    not synchronised one by one: while the host is ahead, an event pair times
    the GPU's work; while it is behind, the gaps it leaves are timed too."""
    for k in range(warmup):
        fn(k)
    torch.cuda.synchronize()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(repeats)
    ]
    for k, (start, end) in enumerate(events):
        start.record()
        fn(warmup + k)
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def time_ms(fn: Callable[[int], object], repeats: int, device: str) -> float:
    return cuda_median_ms(fn, repeats) if device == "cuda" else median_ms(fn, repeats)


def _tensors(value: Any) -> list[torch.Tensor]:
    return [v for v in torch.utils._pytree.tree_leaves(value) if isinstance(v, torch.Tensor)]


def first_tensor(value: Any) -> torch.Tensor:
    return _tensors(value)[0]


# Largest |got - expected| over largest |expected| a cuda output may show: a
# check that the output is right, not a conformance test (tests/test_gpu*.py
# are). Eager rounds to 16 bits after each op where a fused kernel does not;
# eager's fp32 convolutions use TF32 (cuDNN's default).
CHECK_TOLERANCE = {"float32": 1e-2, "bfloat16": 5e-2, "float16": 2e-2}


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected| / max |expected|, in float32 (inf on a shape mismatch)."""
    if got.shape != expected.shape:
        return math.inf
    got, expected = got.float(), expected.float()
    scale = expected.abs().max().item() if expected.numel() else 0.0
    error = (got - expected).abs().max().item() if expected.numel() else 0.0
    return error / scale if scale > 0 else error


def check_output(got: torch.Tensor, expected: torch.Tensor) -> float:
    """relative_error(got, expected), raised as an AssertionError past the
    CHECK_TOLERANCE of expected's dtype."""
    error = relative_error(got, expected)
    tolerance = CHECK_TOLERANCE.get(str(expected.dtype).removeprefix("torch."), 0.0)
    if not error <= tolerance:  # NaN fails too
        raise AssertionError(
            f"output differs from eager: max error {error:.3g} of the largest value "
            f"(tolerance {tolerance:g} for {expected.dtype}, shape {tuple(got.shape)})"
        )
    return error


def same(got: Any, expected: Any, device: str = "cpu") -> dict[str, float]:
    """Checks the first output against eager's; on cuda returns the error to record."""
    if device == "cuda":
        return {"max_rel_err": check_output(first_tensor(got), first_tensor(expected))}
    torch.testing.assert_close(first_tensor(got), first_tensor(expected), atol=1e-3, rtol=1e-3)
    return {}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- #
# The systems                                                                  #
# --------------------------------------------------------------------------- #


def bench_eager(
    model: torch.nn.Module, rotation: list, repeats: int, device: str = "cpu"
) -> dict[str, Any]:
    n = len(rotation)
    return {"median_ms": time_ms(lambda i: model(*rotation[i % n]), repeats, device)}


def bench_compile(
    model: torch.nn.Module, rotation: list, repeats: int, device: str = "cpu"
) -> dict[str, Any]:
    torch._dynamo.reset()
    fast = torch.compile(model)
    n = len(rotation)
    start = time.perf_counter()
    first = fast(*rotation[0])
    synchronize(device)
    compile_s = time.perf_counter() - start
    checked = same(first, model(*rotation[0]), device)
    return {
        "compile_s": compile_s,
        "median_ms": time_ms(lambda i: fast(*rotation[i % n]), repeats, device),
        **checked,
    }


def aotc_options(device: str) -> ExportOptions:
    # A unique cache tag: a fresh build, as a user's first export.
    tag = f"bench-{uuid.uuid4().hex}"
    if device == "cuda":
        return ExportOptions(device="cuda", arch=cuda_arch(), cache_key_tag=tag)
    return ExportOptions(cache_key_tag=tag)


@contextlib.contextmanager
def fresh_triton_cache() -> Iterator[None]:
    """Points Triton's own on-disk cache (~/.triton/cache, which aotc's
    kernel compiles go through) at a new empty directory for the duration:
    aotc's GPU builds stay cold on a second run, as its cache tag keeps
    them cold in aotc's own cache."""
    before = os.environ.get("TRITON_CACHE_DIR")
    directory = tempfile.mkdtemp(prefix="bench-triton-")
    os.environ["TRITON_CACHE_DIR"] = directory
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TRITON_CACHE_DIR", None)
        else:
            os.environ["TRITON_CACHE_DIR"] = before
        shutil.rmtree(directory, ignore_errors=True)


def bench_aotc(
    model: torch.nn.Module,
    rotation: list,
    repeats: int,
    device: str = "cpu",
    dynamic_shapes: Any = None,
) -> dict[str, Any]:
    options = aotc_options(device)
    start = time.perf_counter()
    # A model on the GPU is captured from CPU copies (part of the build time).
    with fresh_triton_cache():
        path = AOTCRunnerUtil.compile(model, rotation[0], options, dynamic_shapes)
    compile_s = time.perf_counter() - start
    n = len(rotation)
    try:
        start = time.perf_counter()
        loaded = AOTCRunnerUtil.load(path, device="cuda" if device == "cuda" else None)
        synchronize(device)
        load_s = time.perf_counter() - start
        checked = same(loaded(*rotation[1 % n]), model(*rotation[1 % n]), device)
        return {
            "compile_s": compile_s,
            "load_s": load_s,
            "median_ms": time_ms(lambda i: loaded(*rotation[i % n]), repeats, device),
            "package_bytes": Path(path).stat().st_size,
            **checked,
        }
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def bench_aoti(
    name: str,
    quick: bool,
    repeats: int,
    threads: int,
    device: str = "cpu",
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """AOTInductor in a subprocess (this script with --aoti-worker): a crash
    (AOTInductor of the GPU machine's torch dies loading its own packages) is
    recorded, not fatal."""
    timeout_s = AOTI_TIMEOUT_S[device] if timeout_s is None else timeout_s
    cmd = [sys.executable, __file__, "--aoti-worker", name, "--repeats", str(repeats)]
    cmd += ["--threads", str(threads), "--device", device] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"exit {done.returncode}: {tail[0][:200]}"}


def aoti_worker(name: str, quick: bool, repeats: int, device: str = "cpu") -> None:
    """Compiles, loads, checks and times one model with AOTInductor; prints
    one JSON line (or dies, which the parent records)."""
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    (entry,) = [m for m in all_models(quick, device) if m.name == name]
    model = entry.build().eval()
    rotation = rotation_for(entry, device)
    n = len(rotation)
    directory = Path(tempfile.mkdtemp(prefix="aoti-bench-"))
    try:
        with torch.no_grad():
            start = time.perf_counter()
            program = torch.export.export(model, rotation[0])
            path = aoti_compile_and_package(program, package_path=str(directory / "m.pt2"))
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            runner = aoti_load_package(path)
            synchronize(device)
            load_s = time.perf_counter() - start
            checked = same(runner(*rotation[1 % n]), model(*rotation[1 % n]), device)
            median = time_ms(lambda i: runner(*rotation[i % n]), repeats, device)
        size = Path(path).stat().st_size
        record = {"compile_s": compile_s, "load_s": load_s, "median_ms": median}
        print(json.dumps({**record, "package_bytes": size, **checked}), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def aoti_timeout_s(
    device: str, elapsed_s: float, budget_s: float | None, models_after: int
) -> float | None:
    """How long the next AOTInductor worker may take: AOTI_TIMEOUT_S, cut
    down to what --budget-s leaves once PER_MODEL_RESERVE_S is kept for each
    model still to come; None when that is under AOTI_MIN_S (skip it)."""
    limit = float(AOTI_TIMEOUT_S[device])
    if budget_s is None:
        return limit
    left = budget_s - elapsed_s - PER_MODEL_RESERVE_S * models_after
    return None if left < AOTI_MIN_S else min(limit, left)


class Progress:
    """Progress lines on stderr, with the time since the run began."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)


def release(device: str) -> None:
    """Frees what the last model left on the GPU before the next one."""
    torch._dynamo.reset()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


# [Note: dynamic against static] Issue 12: a package with a dynamic batch dim
# must run within DYNAMIC_TARGET of the static package's latency at the same
# size. The examples are exported a second time with dim 0 of every input one
# shared Dim ("batch", from 1 to twice the example's) and timed on the same
# inputs; the table's notes print the ratio.
DYNAMIC_TARGET = 1.10
DYNAMIC_MODELS = ("cnn", "gpt", "mlp", "transformer")


def batch_dynamic_shapes(inputs: tuple[Any, ...]) -> tuple[dict[int, Any], ...] | None:
    """dynamic_shapes making dim 0 of every input one shared batch Dim, or
    None when the inputs do not share a batch of at least 2 (torch.export
    specialises sizes 0 and 1)."""
    sizes = {int(t.shape[0]) for t in inputs if isinstance(t, torch.Tensor) and t.dim() > 0}
    if len(sizes) != 1 or len(inputs) == 0 or min(sizes) < 2:
        return None
    if not all(isinstance(t, torch.Tensor) and t.dim() > 0 for t in inputs):
        return None
    batch = torch.export.Dim("batch", min=1, max=2 * sizes.pop())
    return tuple({0: batch} for _ in inputs)


def dynamic_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per model timed both ways: dynamic / static and the verdict."""
    out = []
    for row in rows:
        dynamic, static = row.get("aotc_dynamic", {}), row.get("aotc", {})
        if "median_ms" not in dynamic or "median_ms" not in static:
            if "error" in dynamic:
                out.append(f"  {row['model']:<12} dynamic batch: error: {dynamic['error']}")
            continue
        ratio = dynamic["median_ms"] / static["median_ms"]
        verdict = "PASS" if ratio <= DYNAMIC_TARGET else "MISS"
        out.append(
            f"  {row['model']:<12} dynamic {dynamic['median_ms']:.3f} ms / static "
            f"{static['median_ms']:.3f} ms = {ratio:.2f}  (target <= {DYNAMIC_TARGET})  {verdict}"
        )
    if out:
        out.insert(0, "dynamic batch against static, same size (issue 12):")
    return out


def run(
    models: list[Model],
    quick: bool,
    repeats: int,
    threads: int,
    device: str = "cpu",
    budget_s: float | None = None,
    progress: Progress | None = None,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    progress = progress or Progress()
    rows = []
    for index, entry in enumerate(models):
        model = entry.build().eval()
        rotation = rotation_for(entry, device)
        row: dict[str, Any] = {"model": entry.name}
        if entry.dtype is not None:
            row["dtype"] = entry.dtype
        if device == "cuda":
            row["input_sets"] = len(rotation)
        with torch.no_grad():
            for system, bench in (
                ("eager", bench_eager),
                ("compile", bench_compile),
                ("aotc", bench_aotc),
            ):
                progress(f"{entry.name}: {system}")
                try:
                    row[system] = bench(model, rotation, repeats, device)
                except Exception as e:  # recorded, not fatal: the table says why
                    row[system] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            dynamic = batch_dynamic_shapes(rotation[0]) if entry.name in DYNAMIC_MODELS else None
            if dynamic is not None and "median_ms" in row["aotc"]:
                progress(f"{entry.name}: aotc with a dynamic batch")
                try:
                    row["aotc_dynamic"] = bench_aotc(model, rotation, repeats, device, dynamic)
                except Exception as e:
                    row["aotc_dynamic"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        del model, rotation
        release(device)
        timeout = aoti_timeout_s(device, progress.elapsed(), budget_s, len(models) - index - 1)
        if quick:
            row["aoti"] = {"skipped": "--quick leaves cold AOTInductor builds to the full run"}
        elif timeout is None:
            row["aoti"] = {"skipped": f"the time budget (--budget-s {budget_s:.0f}) was spent"}
        else:
            progress(f"{entry.name}: aoti (a subprocess, at most {timeout:.0f} s)")
            row["aoti"] = bench_aoti(entry.name, quick, repeats, threads, device, timeout)
        if device == "cuda":
            row["targets"] = model_targets(row)
        print_row(row, flush=True, columns=columns_for(device))
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows


# --------------------------------------------------------------------------- #
# Ceilings and aotc's kernel checks (cuda)                                     #
# --------------------------------------------------------------------------- #

# [Note: GPU ceilings]
# Measured in the same run as the models, on the same GPU: the bandwidth of a
# large device-to-device torch copy (bytes read + written) and torch.matmul's
# bf16 rate at 8192^3. Two aotc kernels are then held against them: a bf16
# GEMM of the same size (an exported `x @ w`), and a fused pointwise model,
# (x * 2 + y).relu(), over more than 1 GB read + written in one kernel. The
# targets are issue 11's (TARGETS); per model, aotc against eager and
# torch.compile.
COPY_SOURCE_BYTES = 1 << 30  # 1 GiB read, 1 GiB written
MATMUL_N = 8192
POINTWISE_SHAPE = (16384, 16384)  # x, y and out in bf16: 1.61 GB moved
POINTWISE_DTYPE = "bfloat16"
TARGETS = {"gemm": 0.70, "pointwise": 0.70, "vs_eager": 1.0, "vs_compile": 1.2}


class MatMul(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w


class Pointwise(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * 2 + y).relu()


def gemm_flops(m: int, n: int, k: int) -> int:
    return 2 * m * n * k


def pointwise_bytes(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes Pointwise moves: x and y read, the output written."""
    return 3 * math.prod(shape) * getattr(torch, dtype).itemsize


def per_second(amount: float, ms: float) -> float:
    return amount / (ms * 1e-3)


def verdict(value: float | None, target: float, at_most: bool) -> str:
    """PASS or MISS of |value| against |target| (at most, or at least); "-"
    when there is no value."""
    if value is None or math.isnan(value):
        return "-"
    return "PASS" if (value <= target if at_most else value >= target) else "MISS"


def kernel_record(rate: float, ceiling: float | None, target: float) -> dict[str, Any]:
    """An aotc kernel's rate against a ceiling and issue 11's target ratio."""
    ratio = rate / ceiling if ceiling else None
    return {
        "rate": rate,
        "ceiling": ceiling,
        "ratio": ratio,
        "target": target,
        "verdict": verdict(ratio, target, at_most=False),
    }


def measure_ceilings(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, measure in (("copy", _copy_ceiling), ("matmul", _matmul_ceiling)):
        try:
            out[key] = measure(repeats)
        except Exception as e:  # recorded: the kernel checks then have no ratio
            out[key] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        release("cuda")
    return out


def _copy_ceiling(repeats: int) -> dict[str, Any]:
    src = torch.empty(COPY_SOURCE_BYTES, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    ms = cuda_median_ms(lambda i: dst.copy_(src), repeats)
    moved = 2 * COPY_SOURCE_BYTES
    return {"bytes": moved, "median_ms": ms, "bytes_per_s": per_second(moved, ms)}


def _matmul_ceiling(repeats: int) -> dict[str, Any]:
    n = MATMUL_N
    a, b = random_inputs([InputSpec((n, n), "bfloat16")] * 2)
    ms = cuda_median_ms(lambda i: torch.matmul(a, b), repeats)
    flops = gemm_flops(n, n, n)
    return {
        "shape": [n, n, n],
        "dtype": "bfloat16",
        "flops": flops,
        "median_ms": ms,
        "flops_per_s": per_second(flops, ms),
    }


def _aotc_kernel(
    module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int
) -> dict[str, Any]:
    """Builds |module| with aotc for this GPU (captured from CPU tensors of
    the same shapes), checks it against eager and times it."""
    cpu_inputs = tuple(torch.zeros(t.shape, dtype=t.dtype) for t in inputs)
    start = time.perf_counter()
    with fresh_triton_cache():
        path = AOTCRunnerUtil.compile(module, cpu_inputs, aotc_options("cuda"))
    compile_s = time.perf_counter() - start
    try:
        loaded = AOTCRunnerUtil.load(path, device="cuda")
        with torch.no_grad():
            error = check_output(first_tensor(loaded(*inputs)), module(*inputs))
        ms = cuda_median_ms(lambda i: loaded(*inputs), repeats)
        return {"compile_s": compile_s, "median_ms": ms, "max_rel_err": error}
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def kernel_checks(ceilings: dict[str, Any], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, check in (("gemm", _gemm_check), ("pointwise", _pointwise_check)):
        try:
            out[key] = check(ceilings, repeats)
        except Exception as e:  # recorded, not fatal: the summary says why
            out[key] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        release("cuda")
    return out


def _gemm_check(ceilings: dict[str, Any], repeats: int) -> dict[str, Any]:
    n = MATMUL_N
    timed = _aotc_kernel(
        MatMul().eval(), random_inputs([InputSpec((n, n), "bfloat16")] * 2), repeats
    )
    rate = per_second(gemm_flops(n, n, n), timed["median_ms"])
    ceiling = ceilings.get("matmul", {}).get("flops_per_s")
    record = {"shape": [n, n, n], "dtype": "bfloat16", **timed}
    return {**record, **kernel_record(rate, ceiling, TARGETS["gemm"])}


def _pointwise_check(ceilings: dict[str, Any], repeats: int) -> dict[str, Any]:
    inputs = random_inputs([InputSpec(POINTWISE_SHAPE, POINTWISE_DTYPE)] * 2)
    timed = _aotc_kernel(Pointwise().eval(), inputs, repeats)
    moved = pointwise_bytes(POINTWISE_SHAPE, POINTWISE_DTYPE)
    rate = per_second(moved, timed["median_ms"])
    ceiling = ceilings.get("copy", {}).get("bytes_per_s")
    record = {"shape": list(POINTWISE_SHAPE), "dtype": POINTWISE_DTYPE, "bytes": moved, **timed}
    return {**record, **kernel_record(rate, ceiling, TARGETS["pointwise"])}


def model_targets(row: dict[str, Any]) -> dict[str, Any]:
    """aotc's ratios to eager and torch.compile, with their verdicts."""
    out = {}
    for key, other in (("vs_eager", "eager"), ("vs_compile", "compile")):
        ratio = _median_ratio(row, "aotc", other)
        out[key] = {
            "ratio": ratio,
            "target": TARGETS[key],
            "verdict": verdict(ratio, TARGETS[key], at_most=True),
        }
    return out


def _median_ratio(row: dict[str, Any], a: str, b: str) -> float | None:
    x, y = row.get(a, {}).get("median_ms"), row.get(b, {}).get("median_ms")
    return x / y if x and y else None


def _error_or(record: dict[str, Any], text: Callable[[], str]) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    return text() if record else "not measured"


def ceiling_lines(ceilings: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    """The ceilings and aotc's kernel checks against them, for the terminal."""
    copy = ceilings.get("copy", {})
    matmul = ceilings.get("matmul", {})
    gemm = checks.get("gemm", {})
    pointwise = checks.get("pointwise", {})
    n = MATMUL_N
    lines = ["ceilings (this GPU, this run):"]
    lines.append(
        "  copy bandwidth             "
        + _error_or(
            copy,
            lambda: (
                f"{copy['bytes_per_s'] / 1e12:7.2f} TB/s     "
                f"(torch copy, {copy['bytes'] / 1e9:.2f} GB read + written)"
            ),
        )
    )
    lines.append(
        f"  torch.matmul bf16 {n}^3    "
        + _error_or(matmul, lambda: f"{matmul['flops_per_s'] / 1e12:7.1f} TFLOP/s")
    )
    lines.append("aotc kernels against them:")
    lines.append(
        f"  GEMM bf16 {n}^3            "
        + _error_or(
            gemm,
            lambda: (
                f"{gemm['rate'] / 1e12:7.1f} TFLOP/s  "
                f"{_fraction(gemm['ratio'])} of torch.matmul  "
                f"(target >= {gemm['target']:.2f})  {gemm['verdict']}"
            ),
        )
    )
    lines.append(
        "  pointwise (x*2+y).relu()   "
        + _error_or(
            pointwise,
            lambda: (
                f"{pointwise['rate'] / 1e12:7.2f} TB/s     "
                f"{_fraction(pointwise['ratio'])} of the copy    "
                f"(target >= {pointwise['target']:.2f})  {pointwise['verdict']}  "
                f"[{pointwise['dtype']}, {pointwise['bytes'] / 1e9:.2f} GB moved]"
            ),
        )
    )
    return lines


def ceiling_title(ceilings: dict[str, Any]) -> str:
    """The ceilings in a few words (the chart's second panel)."""
    copy = ceilings.get("copy", {}).get("bytes_per_s")
    matmul = ceilings.get("matmul", {}).get("flops_per_s")
    parts = [
        f"copy {copy / 1e12:.2f} TB/s" if copy else "copy -",
        f"matmul {matmul / 1e12:.0f} TFLOP/s" if matmul else "matmul -",
    ]
    return ", ".join(parts)


def _fraction(ratio: float | None) -> str:
    return "   -" if ratio is None else f"{ratio:4.2f}"


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per model, aotc against issue 11's targets."""
    eager, compiled = TARGETS["vs_eager"], TARGETS["vs_compile"]
    lines = [f"targets per model: aotc/eager <= {eager:.1f}, aotc/compile <= {compiled:.1f}"]
    for row in rows:
        targets = row.get("targets") or model_targets(row)
        cells = []
        for key in ("vs_eager", "vs_compile"):
            ratio = targets[key]["ratio"]
            cells.append(f"{_fraction(ratio)} {targets[key]['verdict']:<4}")
        dtype = f" ({row['dtype']})" if "dtype" in row else ""
        lines.append(f"  {row['model'] + dtype:<24}  " + "   ".join(cells))
    return lines


# --------------------------------------------------------------------------- #
# Output                                                                       #
# --------------------------------------------------------------------------- #

COLUMNS = (
    ("model", 14),
    ("eager ms", 9),
    ("compile ms", 10),
    ("aoti ms", 9),
    ("aotc ms", 9),
    ("aotc/eager", 10),
    ("aotc/compile", 12),
    ("aotc build s", 12),
    ("aoti build s", 12),
    ("aotc load ms", 12),
    ("aoti load ms", 12),
    ("aotc KiB", 9),
    ("aoti KiB", 9),
)
# cuda rows say their dtype (CUDA_DTYPE) after the model.
CUDA_COLUMNS = COLUMNS[:1] + (("dtype", 8),) + COLUMNS[1:]


def columns_for(device: str) -> tuple[tuple[str, int], ...]:
    return CUDA_COLUMNS if device == "cuda" else COLUMNS


def print_header(columns: tuple[tuple[str, int], ...] = COLUMNS) -> None:
    print("  ".join(f"{title:>{width}}" for title, width in columns))


def _cell(row: dict[str, Any], system: str, key: str, scale: float = 1.0, digits: int = 3) -> str:
    value = row.get(system, {}).get(key)
    if value is None:
        result = row.get(system, {})
        return "error" if "error" in result else "skip" if "skipped" in result else "-"
    return f"{value * scale:.{digits}f}"


def _ratio(row: dict[str, Any], a: str, b: str) -> str:
    ratio = _median_ratio(row, a, b)
    return "-" if ratio is None else f"{ratio:.2f}"


CELLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "model": lambda row: row["model"],
    "dtype": lambda row: row.get("dtype", "-"),
    "eager ms": lambda row: _cell(row, "eager", "median_ms"),
    "compile ms": lambda row: _cell(row, "compile", "median_ms"),
    "aoti ms": lambda row: _cell(row, "aoti", "median_ms"),
    "aotc ms": lambda row: _cell(row, "aotc", "median_ms"),
    "aotc/eager": lambda row: _ratio(row, "aotc", "eager"),
    "aotc/compile": lambda row: _ratio(row, "aotc", "compile"),
    "aotc build s": lambda row: _cell(row, "aotc", "compile_s"),
    "aoti build s": lambda row: _cell(row, "aoti", "compile_s"),
    "aotc load ms": lambda row: _cell(row, "aotc", "load_s", 1e3),
    "aoti load ms": lambda row: _cell(row, "aoti", "load_s", 1e3),
    "aotc KiB": lambda row: _cell(row, "aotc", "package_bytes", 1 / 1024, 0),
    "aoti KiB": lambda row: _cell(row, "aoti", "package_bytes", 1 / 1024, 0),
}


def format_row(row: dict[str, Any], columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    return "  ".join(f"{CELLS[title](row):>{width}}" for title, width in columns)


def print_row(
    row: dict[str, Any], flush: bool = False, columns: tuple[tuple[str, int], ...] = COLUMNS
) -> None:
    print(format_row(row, columns), flush=flush)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Each error, and each distinct reason for skipping, once."""
    out: list[str] = []
    for row in rows:
        for system in SYSTEMS:
            result = row.get(system, {})
            if "error" in result:
                out.append(f"{row['model']} {system}: {result['error']}")
            elif "skipped" in result and f"{system}: {result['skipped']}" not in out:
                out.append(f"{system}: {result['skipped']}")
    return out


def chart(
    rows: list[dict[str, Any]],
    path: Path,
    checks: dict[str, Any] | None = None,
    ceilings: dict[str, Any] | None = None,
) -> None:
    """Speedups over eager per system; with |checks| (cuda), a second panel
    of aotc's kernels as fractions of their |ceilings|, against the targets."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no chart: matplotlib is not installed; pip install matplotlib for {path})")
        return
    systems = [s for s in SYSTEMS if s != "eager"]
    panels = 2 if checks else 1
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(max(6, 1.2 * len(rows)) + 3 * (panels - 1), 4),
        gridspec_kw={"width_ratios": [max(len(rows), 1), 1.5][:panels]},
        squeeze=False,
    )
    ax = axes[0][0]
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        speedups = []
        for row in rows:
            e, s = row["eager"].get("median_ms"), row.get(system, {}).get("median_ms")
            speedups.append(e / s if e and s else 0.0)
        ax.bar([i + k * width for i in range(len(rows))], speedups, width, label=system)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(rows))])
    labels = [row["model"] + (f" ({row['dtype']})" if "dtype" in row else "") for row in rows]
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("speedup over eager (higher is better)")
    ax.legend()
    if checks:
        ax = axes[0][1]
        names = {"gemm": "GEMM bf16\nvs matmul", "pointwise": "pointwise\nvs copy"}
        ratios = [checks.get(key, {}).get("ratio") or 0.0 for key in names]
        ax.bar(range(len(names)), ratios, 0.6, color="tab:red")
        ax.axhline(TARGETS["gemm"], color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(list(names.values()))
        ax.set_ylabel("aotc kernel / ceiling (target 0.70)")
        ax.set_ylim(0, max(1.0, *ratios) * 1.1)
        ax.set_title(ceiling_title(ceilings or {}), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}")


def environment(threads: int, device: str = "cpu") -> dict[str, Any]:
    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["arch"] = cuda_arch()
        env["cuda"] = torch.version.cuda
        env["l2_mib"] = round(l2_bytes() / (1 << 20), 1)
        try:
            import triton

            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    return env


def report(
    env: dict[str, Any],
    rows: list[dict[str, Any]],
    ceilings: dict[str, Any] | None = None,
    checks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What --json writes."""
    out: dict[str, Any] = {"environment": env, "results": rows}
    if ceilings is not None:
        out["ceilings"] = ceilings
    if checks is not None:
        out["kernel_checks"] = checks
    return out


def cuda_refusal() -> str | None:
    """Why --device cuda cannot run here (None: it can)."""
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch: --device cuda needs one (see nvidia-smi)"
    return None


def main() -> int:
    # Cold builds for everyone: aotc bypasses its cache (bench_aotc), and
    # Inductor (torch.compile, AOTInductor in the worker, which inherits the
    # environment) its FX-graph and kernel caches.
    os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="examples only, no AOTInductor")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--chart", type=Path, help="write a PNG of speedups over eager here")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--repeats", type=int, default=0, help="timed calls (default 10, quick 5; cuda 50, 20)"
    )
    parser.add_argument("--only", help="comma-separated model names (default: all)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help=f"skip the AOTInductor builds left after this many seconds "
        f"(default {CUDA_BUDGET_S:.0f} on cuda, none on cpu; 0: none)",
    )
    parser.add_argument("--aoti-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    repeats = args.repeats or ((20 if args.quick else 50) if cuda else (5 if args.quick else 10))
    if cuda and (why := cuda_refusal()):
        parser.error(why)
    if args.aoti_worker:
        aoti_worker(args.aoti_worker, args.quick, repeats, args.device)
        return 0
    budget_s = args.budget_s if args.budget_s is not None else CUDA_BUDGET_S if cuda else None
    budget_s = budget_s or None
    models = all_models(args.quick, args.device)
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {m.name for m in models})
        if unknown:
            parser.error(f"--only: no model {', '.join(unknown)} on {args.device}")
        models = [m for m in models if m.name in wanted]
    if not cuda:
        return _main(args, models, repeats, budget_s)
    # Inductor's Triton kernels go through its cache directory (Triton's cache
    # included), which FORCE_DISABLE_CACHES leaves on: a fresh one keeps
    # torch.compile and AOTInductor (its worker inherits it) cold too.
    inductor_cache = tempfile.mkdtemp(prefix="bench-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
    try:
        return _main(args, models, repeats, budget_s)
    finally:
        shutil.rmtree(inductor_cache, ignore_errors=True)


def _main(
    args: argparse.Namespace, models: list[Model], repeats: int, budget_s: float | None
) -> int:
    """The run, its table, notes, JSON and chart."""
    cuda = args.device == "cuda"
    progress = Progress()
    env = environment(args.threads, args.device)
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    ceilings = checks = None
    if cuda:
        progress("ceilings: device-to-device copy, torch.matmul bf16")
        ceilings = measure_ceilings(repeats)
        progress("aotc kernel checks: GEMM bf16, fused pointwise (cold builds)")
        checks = kernel_checks(ceilings, repeats)
        for line in ceiling_lines(ceilings, checks):
            print(line, flush=True)

    def write_json(rows: list[dict[str, Any]]) -> None:
        if args.json:  # after each model too: a run cut short keeps what it measured
            args.json.write_text(json.dumps(report(env, rows, ceilings, checks), indent=2))

    columns = columns_for(args.device)
    print_header(columns)
    rows = run(
        models, args.quick, repeats, args.threads, args.device, budget_s, progress, write_json
    )
    for line in notes(rows):
        print(f"  {line}")
    for line in dynamic_lines(rows):
        print(line)
    if cuda:
        assert ceilings is not None and checks is not None
        for line in ceiling_lines(ceilings, checks) + target_lines(rows):
            print(line)
        progress("done")
    if args.json:
        write_json(rows)
        print(f"json: {args.json}")
    if args.chart:
        chart(rows, args.chart, checks, ceilings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
