"""Extern kernels (aot/codegen/cpp/include/aotc_cpu_kernels.h) against torch.

Two C++ programs, each built once with g++ into the test's temp dir:
- a runner that calls every kernel directly on operands written from Python
  (raw storage + offset + strides, so transposed, expanded and sliced views
  are read in place), compared with torch in float32 (tight) and bfloat16
  (one bf16 rounding);
- a program made of the call sites that extern_calls.emit_extern prints for
  ExternKernel nodes built by the lowerings in aot/lowering/extern.py, run
  through a KernelContext like the generated wrapper's.
Both use a fake host whose parallel_for runs each grain-sized chunk inline,
so chunk boundaries are exercised.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F

from aot.codegen.cpp.extern_calls import EXTERN_HEADER, emit_extern
from aot.ir.nodes import Buffer, BufferKind, ExternKernel, Layout, ReinterpretView
from aot.ir.symbols import FloorDiv, size_symbol
from aot.lowering import extern
from aot.lowering.context import LoweringContext
from aot.lowering.registry import LoweringRegistry

REPO = Path(__file__).resolve().parent.parent
INCLUDES = [REPO / "aot" / "codegen" / "cpp" / "include", REPO / "cpp_runtime" / "include"]
CXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(CXX is None, reason="needs g++")

HOST_SOURCE = r"""
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "aotc_cpu_kernels.h"

namespace kn = aotc_rt::kernels;

// Fake host: parallel_for runs fn inline, one grain-sized chunk at a time.
static void inline_parallel_for(void*, void*, int64_t begin, int64_t end, int64_t grain,
                                aotc_abi_range_fn fn, void* fn_ctx) {
  for (int64_t b = begin; b < end; b += grain) fn(fn_ctx, b, std::min(end, b + grain));
}

static aotc_host_t make_host() {
  aotc_host_t host;
  std::memset(&host, 0, sizeof(host));
  host.struct_size = sizeof(host);
  host.parallel_for = inline_parallel_for;
  return host;
}

static std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

static void write_bytes(const std::string& path, const void* data, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}
"""

RUNNER_SOURCE = (
    HOST_SOURCE
    + r"""
// argv after the op name and dtype, read in order.
struct Args {
  char** argv;
  int argc;
  int at;
  std::string str() { return at < argc ? argv[at++] : ""; }
  int64_t i64() { return std::stoll(str()); }
  double f64() { return std::stod(str()); }
};

// An operand: "<file> <offset> <strides...>" or "-" for none.
template <typename T>
struct Operand {
  std::vector<char> bytes;
  const T* ptr = nullptr;
  int64_t s[5] = {0, 0, 0, 0, 0};
  void read(Args& args, int nstrides) {
    std::string path = args.str();
    if (path == "-") return;
    bytes = read_bytes(path);
    ptr = reinterpret_cast<const T*>(bytes.data()) + args.i64();
    for (int k = 0; k < nstrides; ++k) s[k] = args.i64();
  }
  kn::Tensor4<T> t4() const { return kn::Tensor4<T>{ptr, {s[0], s[1], s[2], s[3]}}; }
  kn::Tensor5<T> t5() const { return kn::Tensor5<T>{ptr, {s[0], s[1], s[2], s[3], s[4]}}; }
  kn::Matrix<T> mat() const { return kn::Matrix<T>{ptr, s[0], s[1], s[2]}; }
};

template <typename T>
static int32_t run_gemm(const aotc_rt::KernelContext& ctx, Args& a) {
  int64_t batch = a.i64(), m = a.i64(), n = a.i64(), k = a.i64();
  float alpha = static_cast<float>(a.f64()), beta = static_cast<float>(a.f64());
  Operand<T> x, y, bias;
  x.read(a, 3);
  y.read(a, 3);
  bias.read(a, 3);
  std::vector<T> out(static_cast<size_t>(batch * m * n));
  int32_t code =
      kn::gemm<T>(ctx, batch, m, n, k, x.mat(), y.mat(), bias.mat(), alpha, beta, out.data());
  write_bytes(a.str(), out.data(), out.size() * sizeof(T));
  return code;
}

template <typename T>
static int32_t run_conv(const aotc_rt::KernelContext& ctx, Args& a) {
  kn::ConvShape p;
  int64_t* fields[] = {&p.n,     &p.c_in,     &p.h,        &p.w,     &p.c_out, &p.h_out,
                       &p.w_out, &p.kh,       &p.kw,       &p.stride_h, &p.stride_w,
                       &p.pad_h, &p.pad_w,    &p.dil_h,    &p.dil_w, &p.groups};
  for (int64_t* f : fields) *f = a.i64();
  p.transposed = a.i64() != 0;
  Operand<T> x, w, bias;
  x.read(a, 4);
  w.read(a, 4);
  bias.read(a, 1);
  std::vector<T> out(static_cast<size_t>(p.n * p.c_out * p.h_out * p.w_out));
  int32_t code = kn::conv2d<T>(ctx, p, x.t4(), w.t4(), bias.ptr, bias.s[0], out.data());
  write_bytes(a.str(), out.data(), out.size() * sizeof(T));
  return code;
}

// Records, per output element, how often the epilogue was given it and its
// value then; counts calls outside the output or for an empty range in |bad|.
template <typename T>
struct RecordingEpilogue {
  const T* out;
  int64_t rows, width;
  int64_t* calls;
  T* seen;
  int64_t* bad;
  void operator()(int64_t row, int64_t c0, int64_t c1) const {
    if (row < 0 || row >= rows || c0 < 0 || c1 > width || c0 >= c1) {
      ++*bad;
      return;
    }
    for (int64_t c = c0; c < c1; ++c) {
      calls[row * width + c] += 1;
      seen[row * width + c] = out[row * width + c];
    }
  }
};

// kn::conv on 5-D operands with a RecordingEpilogue; writes the output, the
// call counts (int64) and the values seen.
template <typename T>
static int32_t run_conv_nd(const aotc_rt::KernelContext& ctx, Args& a) {
  kn::ConvNdShape p;
  for (int64_t* f : {&p.n, &p.c_in, &p.c_out, &p.groups}) *f = a.i64();
  for (kn::Dims3* d : {&p.in, &p.out, &p.kernel, &p.stride, &p.pad, &p.dil}) {
    for (int64_t& v : *d) v = a.i64();
  }
  p.transposed = a.i64() != 0;
  Operand<T> x, w, bias;
  x.read(a, 5);
  w.read(a, 5);
  bias.read(a, 1);
  const int64_t width = p.out[2], rows = p.n * p.c_out * p.out[0] * p.out[1];
  const size_t count = static_cast<size_t>(rows * width);
  std::vector<T> out(count), seen(count);
  std::vector<int64_t> calls(count);
  int64_t bad = 0;
  RecordingEpilogue<T> epi{out.data(), rows, width, calls.data(), seen.data(), &bad};
  int32_t code = kn::conv<T>(ctx, p, x.t5(), w.t5(), bias.ptr, bias.s[0], out.data(), epi);
  write_bytes(a.str(), out.data(), count * sizeof(T));
  write_bytes(a.str(), calls.data(), count * sizeof(int64_t));
  write_bytes(a.str(), seen.data(), count * sizeof(T));
  if (bad != 0) {
    std::fprintf(stderr, "%lld epilogue calls out of range\n", static_cast<long long>(bad));
    return 97;
  }
  return code;
}

static kn::PoolShape read_pool(Args& a) {
  kn::PoolShape p;
  int64_t* fields[] = {&p.n,        &p.c,        &p.h,     &p.w,     &p.h_out,
                       &p.w_out,    &p.kh,       &p.kw,    &p.stride_h, &p.stride_w,
                       &p.pad_h,    &p.pad_w,    &p.dil_h, &p.dil_w};
  for (int64_t* f : fields) *f = a.i64();
  return p;
}

template <typename T>
static int32_t run_max_pool(const aotc_rt::KernelContext& ctx, Args& a) {
  kn::PoolShape p = read_pool(a);
  bool with_indices = a.i64() != 0;
  Operand<T> x;
  x.read(a, 4);
  size_t count = static_cast<size_t>(p.n * p.c * p.h_out * p.w_out);
  std::vector<T> out(count);
  std::vector<int64_t> indices(count);
  int32_t code =
      kn::max_pool2d<T>(ctx, p, x.t4(), out.data(), with_indices ? indices.data() : nullptr);
  write_bytes(a.str(), out.data(), count * sizeof(T));
  if (with_indices) write_bytes(a.str(), indices.data(), count * sizeof(int64_t));
  return code;
}

template <typename T>
static int32_t run_avg_pool(const aotc_rt::KernelContext& ctx, Args& a) {
  kn::PoolShape p = read_pool(a);
  bool count_include_pad = a.i64() != 0;
  int64_t divisor = a.i64();
  Operand<T> x;
  x.read(a, 4);
  std::vector<T> out(static_cast<size_t>(p.n * p.c * p.h_out * p.w_out));
  int32_t code = kn::avg_pool2d<T>(ctx, p, count_include_pad, divisor, x.t4(), out.data());
  write_bytes(a.str(), out.data(), out.size() * sizeof(T));
  return code;
}

template <typename T>
static int32_t run_adaptive(const aotc_rt::KernelContext& ctx, Args& a) {
  int64_t n = a.i64(), c = a.i64(), h = a.i64(), w = a.i64(), ho = a.i64(), wo = a.i64();
  Operand<T> x;
  x.read(a, 4);
  std::vector<T> out(static_cast<size_t>(n * c * ho * wo));
  int32_t code = kn::adaptive_avg_pool2d<T>(ctx, n, c, h, w, ho, wo, x.t4(), out.data());
  write_bytes(a.str(), out.data(), out.size() * sizeof(T));
  return code;
}

template <typename T, typename M>
static int32_t run_sdpa_with(const aotc_rt::KernelContext& ctx, Args& a, kn::SdpaShape p) {
  Operand<T> q, k, v;
  Operand<M> mask;
  q.read(a, 4);
  k.read(a, 4);
  v.read(a, 4);
  mask.read(a, 4);
  bool with_lse = a.i64() != 0;
  std::vector<T> out(static_cast<size_t>(p.batch * p.heads * p.q_len * p.v_dim));
  std::vector<float> lse(static_cast<size_t>(p.batch * p.heads * p.q_len));
  int32_t code = kn::sdpa<T, M>(ctx, p, q.t4(), k.t4(), v.t4(), mask.t4(), out.data(),
                                with_lse ? lse.data() : nullptr);
  write_bytes(a.str(), out.data(), out.size() * sizeof(T));
  if (with_lse) write_bytes(a.str(), lse.data(), lse.size() * sizeof(float));
  return code;
}

template <typename T>
static int32_t run_sdpa(const aotc_rt::KernelContext& ctx, Args& a) {
  std::string mask_dtype = a.str();
  kn::SdpaShape p;
  int64_t* fields[] = {&p.batch, &p.heads, &p.kv_heads, &p.q_len, &p.kv_len, &p.head_dim, &p.v_dim};
  for (int64_t* f : fields) *f = a.i64();
  p.scale = static_cast<float>(a.f64());
  p.causal = a.i64() != 0;
  if (mask_dtype == "bool") return run_sdpa_with<T, bool>(ctx, a, p);
  if (mask_dtype == "float32") return run_sdpa_with<T, float>(ctx, a, p);
  return run_sdpa_with<T, T>(ctx, a, p);  // "none" (the mask operand is "-") or the same dtype
}

template <typename T>
static int32_t dispatch(const std::string& op, const aotc_rt::KernelContext& ctx, Args& a) {
  if (op == "gemm") return run_gemm<T>(ctx, a);
  if (op == "conv") return run_conv<T>(ctx, a);
  if (op == "conv_nd") return run_conv_nd<T>(ctx, a);
  if (op == "max_pool") return run_max_pool<T>(ctx, a);
  if (op == "avg_pool") return run_avg_pool<T>(ctx, a);
  if (op == "adaptive") return run_adaptive<T>(ctx, a);
  if (op == "sdpa") return run_sdpa<T>(ctx, a);
  std::fprintf(stderr, "unknown op %s\n", op.c_str());
  return 99;
}

int main(int argc, char** argv) {
  aotc_host_t host = make_host();
  aotc_abi_status_t status{};
  aotc_rt::KernelContext ctx{&host, nullptr, nullptr, nullptr, &status};
  Args args{argv, argc, 3};
  std::string op = argv[1], dtype = argv[2];
  int32_t code = dtype == "bfloat16" ? dispatch<kn::bf16>(op, ctx, args)
                                     : dispatch<float>(op, ctx, args);
  if (code != 0) std::fprintf(stderr, "code %d: %s\n", code, status.message);
  return code;
}
"""
)


def _compile(source: str, directory: Path, name: str, flags: Sequence[str] = ()) -> Path:
    src = directory / f"{name}.cc"
    src.write_text(source)
    exe = directory / name
    cmd = [CXX, "-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(src)]
    cmd[1:1] = [*flags, *(f"-I{p}" for p in INCLUDES)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return exe


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[Path]]:
    return _make_runner(tmp_path_factory.mktemp("extern_runner"))


def _make_runner(directory: Path, flags: Sequence[str] = ()) -> Callable[..., list[Path]]:
    """RUNNER_SOURCE built with |flags| in |directory|, as a function."""
    exe = _compile(RUNNER_SOURCE, directory, "runner", flags)

    def run(op: str, dtype: torch.dtype, args: Sequence[object], outputs: int = 1, code: int = 0):
        """Runs |op|; returns its output files (or its stderr when |code| != 0)."""
        run.count += 1  # type: ignore[attr-defined]
        outs = [directory / f"out{run.count}_{k}.bin" for k in range(outputs)]  # type: ignore[attr-defined]
        cmd = [str(exe), op, _DTYPE_NAMES[dtype], *(str(a) for a in args), *map(str, outs)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == code, f"{op} returned {proc.returncode}: {proc.stderr}"
        return outs if code == 0 else proc.stderr

    run.count = 0  # type: ignore[attr-defined]
    run.directory = directory  # type: ignore[attr-defined]
    return run


_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.bool: "bool"}


# -- operands ---------------------------------------------------------------------


class Strided:
    """A random tensor living inside a larger flat storage with given strides
    and offset; |view| is what torch sees, |storage| what the kernel reads."""

    counter = 0

    def __init__(
        self,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        strides: Sequence[int] | None = None,
        offset: int = 0,
        gen: torch.Generator | None = None,
        values: torch.Tensor | None = None,
    ) -> None:
        if strides is None:
            strides = torch.empty(shape).stride() if shape else ()
        span = offset + sum((s - 1) * st for s, st in zip(shape, strides, strict=True)) + 1
        if values is not None:
            # Element by element (views that overlap, e.g. expands, get the
            # same value at a shared location).
            flat = torch.full(tuple(shape), offset, dtype=torch.int64)
            for dim, (size, stride) in enumerate(zip(shape, strides, strict=True)):
                steps = torch.arange(size) * stride
                flat = flat + steps.reshape([-1 if d == dim else 1 for d in range(len(shape))])
            base = torch.zeros(span, dtype=values.dtype)
            base[flat.flatten()] = values.expand(tuple(shape)).flatten()
        elif dtype == torch.bool:
            base = torch.rand(span, generator=gen) > 0.3
        else:
            base = torch.randn(span, generator=gen)
        self.storage = base.to(dtype)
        self.view = self.storage.as_strided(shape, strides, offset)
        self.offset = offset
        self.strides = list(strides)

    def args(self, directory: Path, nstrides: int | None = None) -> list[object]:
        Strided.counter += 1
        path = directory / f"in{Strided.counter}.bin"
        _to_numpy(self.storage).tofile(path)
        strides = self.strides if nstrides is None else _pad_strides(self.strides, nstrides)
        return [path, self.offset, *strides]


def _pad_strides(strides: list[int], n: int) -> list[int]:
    return [0] * (n - len(strides)) + strides


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy()
    return t.contiguous().numpy()


def _read(path: Path, dtype: torch.dtype, shape: Sequence[int]) -> torch.Tensor:
    if dtype == torch.bfloat16:
        raw = torch.from_numpy(np.fromfile(path, dtype=np.int16)).view(torch.bfloat16)
    elif dtype == torch.int64:
        raw = torch.from_numpy(np.fromfile(path, dtype=np.int64))
    else:
        raw = torch.from_numpy(np.fromfile(path, dtype=np.float32))
    return raw.reshape(shape)


def _check(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    """|out| against a float64 |ref|: float32 tight; bfloat16 within a few bf16
    roundings. |scale| is the size of the values (sqrt(K) for a K-long sum)."""
    rtol, atol = (1e-5, 2e-6) if dtype == torch.float32 else (1.6e-2, 1e-2)
    torch.testing.assert_close(
        out.double(), ref.double(), rtol=rtol, atol=atol * scale, equal_nan=True
    )


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


DTYPES = [torch.float32, torch.bfloat16]


# -- GEMM -------------------------------------------------------------------------


def _run_gemm(runner, dtype, a: Strided, b: Strided, bias: Strided | None, alpha, beta):
    batched = a.view.dim() == 3
    av, bv = (a.view, b.view) if batched else (a.view[None], b.view[None])
    batch, m, k = av.shape
    n = bv.shape[-1]
    d = runner.directory
    bias_args = ["-"] if bias is None else bias.args(d, 3)
    args = [batch, m, n, k, alpha, beta, *a.args(d, 3), *b.args(d, 3), *bias_args]
    (path,) = runner("gemm", dtype, args)
    out = _read(path, dtype, (batch, m, n))
    ref = alpha * (av.double() @ bv.double())
    if bias is not None and beta != 0:
        ref = ref + beta * bias.view.double()
    return out if batched else out[0], ref if batched else ref[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,a_t,b_t",
    [
        (33, 77, 55, False, False),
        (33, 77, 55, True, True),
        (5, 300, 9, False, True),
        (1, 1, 1, True, False),
    ],
)
def test_mm(gemm_runner, dtype, m, n, k, a_t, b_t) -> None:
    g = _gen(m * n + k)
    a = Strided((m, k), dtype, (1, m + 3) if a_t else (k + 2, 1), offset=5, gen=g)
    b = Strided((k, n), dtype, (1, k) if b_t else (n, 1), gen=g)
    out, ref = _run_gemm(gemm_runner, dtype, a, b, None, 1.0, 0.0)
    _check(out, ref, dtype, math.sqrt(k))


def test_addmm_large_fp32(gemm_runner) -> None:
    m, n, k = 333, 777, 555
    g = _gen(1)
    a = Strided((m, k), gen=g)
    b = Strided((k, n), strides=(1, k), gen=g)  # a linear layer's transposed weight
    bias = Strided((m, n), strides=(0, 1), gen=g)  # 1-D bias broadcast over rows
    out, ref = _run_gemm(gemm_runner, torch.float32, a, b, bias, 0.5, 2.0)
    _check(out, ref, torch.float32, math.sqrt(k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_strides", [(1, 0), (1, 70), (0, 0)])
def test_addmm_bias_broadcasts(gemm_runner, dtype, bias_strides) -> None:
    m, n, k = 40, 67, 23
    g = _gen(2)
    a = Strided((m, k), dtype, gen=g)
    b = Strided((k, n), dtype, gen=g)
    bias = Strided((m, n), dtype, bias_strides, gen=g)
    out, ref = _run_gemm(gemm_runner, dtype, a, b, bias, 1.0, 1.0)
    _check(out, ref, dtype, math.sqrt(k))


def test_addmm_nan_and_beta_zero(runner) -> None:
    m, n, k = 6, 5, 4
    a_vals = torch.randn(m, k, generator=_gen(3))
    a_vals[2, 1] = float("nan")
    bias_vals = torch.full((m, n), float("nan"))
    a = Strided((m, k), values=a_vals)
    b = Strided((k, n), gen=_gen(4))
    bias = Strided((m, n), values=bias_vals)
    out, ref = _run_gemm(runner, torch.float32, a, b, bias, 1.0, 0.0)  # beta 0: bias ignored
    assert torch.isnan(out[2]).all() and not torch.isnan(out[[0, 1, 3, 4, 5]]).any()
    _check(out, ref, torch.float32)


def test_addmm_empty_k(runner) -> None:
    a = Strided((3, 0), strides=(1, 1))
    b = Strided((0, 4), strides=(4, 1))
    bias = Strided((3, 4), strides=(0, 1), gen=_gen(5))
    out, ref = _run_gemm(runner, torch.float32, a, b, bias, 1.0, 3.0)
    _check(out, ref, torch.float32)


# The portable build; -march=x86-64-v3, whose GEMM micro-kernel dispatches to
# AVX-512 where the CPU has it ([Note: AVX-512 micro-kernel]); and
# -march=x86-64-v3 with that dispatch compiled out (AVX2 only).
SIMD_BUILDS = {
    "portable": None,
    "x86-64-v3": ["-march=x86-64-v3"],
    "x86-64-v3-avx2-only": ["-march=x86-64-v3", "-DAOTC_NO_AVX512"],
}


def _simd_runner(request, runner, tmp_path_factory: pytest.TempPathFactory, what: str):
    flags = SIMD_BUILDS[request.param]
    if flags is None:
        return runner
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("needs an AVX2/FMA CPU")
    return _make_runner(tmp_path_factory.mktemp(f"{what}_{request.param}"), flags)


@pytest.fixture(scope="module", params=list(SIMD_BUILDS))
def gemm_runner(request, runner, tmp_path_factory: pytest.TempPathFactory):
    """The runner built each SIMD_BUILDS way, so that the AVX2/FMA and AVX-512
    GEMM kernels (and their bfloat16 widening of B) run too."""
    return _simd_runner(request, runner, tmp_path_factory, "gemm_runner")


def _float_copy(s: Strided) -> Strided:
    """|s| with its storage converted to float32: same values, offset and strides."""
    copy = Strided.__new__(Strided)
    copy.storage = s.storage.float()
    copy.view = copy.storage.as_strided(s.view.shape, s.strides, s.offset)
    copy.offset, copy.strides = s.offset, list(s.strides)
    return copy


# name: (batch or 0 for a 2-D GEMM, m, n, k, a strides, b strides, bias strides or None).
# M <= 16 (M <= 32 when N >= 1024) takes the few-rows path, more the tiled one
# ([Note: GEMM micro-kernel]).
GEMM_BF16_CASES = {
    "gemv_transposed_b": (0, 1, 300, 37, (37, 1), (1, 37), None),
    "gemv_wide_runs": (0, 1, 4500, 8, (8, 1), (4500, 1), (0, 1)),
    "rows_m5_odd_k": (0, 5, 77, 531, (1, 5), (77, 1), None),
    "rows_m16_bias_column": (0, 16, 83, 70, (70, 1), (83, 1), (1, 0)),
    "rows_chunks_across_batches": (2, 3, 600, 600, (1800, 600, 1), (0, 600, 1), None),
    "rows_shared_b_bias_row": (3, 4, 50, 20, (80, 20, 1), (0, 50, 1), (0, 0, 1)),
    "rows_m32_wide": (0, 32, 1030, 45, (45, 1), (1030, 1), (0, 1)),
    "tiled_m17_k_blocks": (0, 17, 300, 300, (300, 1), (300, 1), (0, 1)),
    "tiled_transposed_b": (0, 50, 45, 270, (1, 50), (1, 270), None),
    "tiled_b_stride_4kb": (0, 20, 40, 40, (40, 1), (2048, 1), None),
    "tiled_b_stride_2kb": (0, 20, 33, 30, (30, 1), (1024, 1), None),
    "tiled_shared_b_bias_column": (2, 30, 70, 300, (9000, 300, 1), (0, 70, 1), (0, 1, 0)),
}


@pytest.mark.parametrize("case", list(GEMM_BF16_CASES))
def test_gemm_bf16_rounds_the_float_sum_once(gemm_runner, case) -> None:
    """A bfloat16 GEMM equals the float32 GEMM of the same values rounded once
    (float sums over k in order, whichever path and B layout)."""
    batch, m, n, k, a_strides, b_strides, bias_strides = GEMM_BF16_CASES[case]
    g = _gen(m * 10007 + n * 101 + k)
    lead = (batch,) if batch else ()
    bf = torch.bfloat16
    a = Strided((*lead, m, k), bf, a_strides, offset=3, gen=g)
    b = Strided((*lead, k, n), bf, b_strides, gen=g)
    bias = None if bias_strides is None else Strided((*lead, m, n), bf, bias_strides, gen=g)
    out, ref = _run_gemm(gemm_runner, bf, a, b, bias, 0.5, 2.0)
    bias32 = None if bias is None else _float_copy(bias)
    out32, _ = _run_gemm(
        gemm_runner, torch.float32, _float_copy(a), _float_copy(b), bias32, 0.5, 2.0
    )
    assert torch.equal(out, out32.bfloat16())
    _check(out, ref, bf, math.sqrt(k))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bmm(runner, dtype) -> None:
    batch, m, n, k = 5, 17, 29, 13
    g = _gen(6)
    a = Strided((batch, m, k), dtype, (m * k, 1, m), gen=g)  # each matrix transposed
    b = Strided((batch, k, n), dtype, (0, n, 1), gen=g)  # one matrix shared (expand)
    out, ref = _run_gemm(runner, dtype, a, b, None, 1.0, 0.0)
    _check(out, ref, dtype, math.sqrt(k))
    b2 = Strided((batch, k, n), dtype, (1, 1, k), gen=g)  # overlapping, transposed, packed
    out, ref = _run_gemm(runner, dtype, a, b2, None, 1.0, 0.0)
    _check(out, ref, dtype, math.sqrt(k))


# -- convolution --------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(SIMD_BUILDS))
def conv_runner(request, runner, tmp_path_factory: pytest.TempPathFactory):
    """The runner built each SIMD_BUILDS way, so that the vector paths run
    too: the GEMM micro-kernels behind the implicit-GEMM convolution and the
    depthwise rows ([Note: depthwise rows])."""
    return _simd_runner(request, runner, tmp_path_factory, "conv_runner")


def _run_conv(runner, dtype, x, w, bias, stride, padding, dilation, groups, output_padding=None):
    """Runs conv2d (transposed when |output_padding| is given) on Strided operands."""
    xd, wd, bd = x.view.double(), w.view.double(), None if bias is None else bias.view.double()
    if output_padding is None:
        ref = F.conv2d(xd, wd, bd, stride, padding, dilation, groups)
    else:
        ref = F.conv_transpose2d(xd, wd, bd, stride, padding, output_padding, groups, dilation)
    shape = [*x.view.shape, *ref.shape[1:], *w.view.shape[2:], *stride, *padding, *dilation]
    shape += [groups, int(output_padding is not None)]
    d = runner.directory
    bias_args = ["-"] if bias is None else bias.args(d)
    (path,) = runner("conv", dtype, [*shape, *x.args(d), *w.args(d), *bias_args])
    return _read(path, dtype, ref.shape), ref


CONV_CASES = [
    # (n, c_in, h, w, c_out, k, stride, padding, dilation, groups, bias, channels_last)
    (2, 3, 9, 11, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, False),
    (1, 4, 12, 10, 6, (3, 2), (2, 3), (2, 1), (2, 2), 2, False, True),
    (2, 6, 7, 7, 6, (3, 3), (2, 2), (1, 1), (1, 1), 6, True, False),  # depthwise
    (1, 5, 1, 600, 7, (1, 5), (1, 2), (0, 2), (1, 3), 1, True, False),  # conv1d, w > tile
    (1, 2, 4, 4, 9, (4, 4), (1, 1), (0, 0), (1, 1), 1, True, False),  # 9 = 2 blocks + 1
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(runner, dtype, case) -> None:
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups, with_bias, cl = case
    g = _gen(h * w + c_out)
    x_strides = (h * w * c_in, 1, w * c_in, c_in) if cl else None
    x = Strided((n, c_in, h, w), dtype, x_strides, gen=g)
    wt = Strided((c_out, c_in // groups, *k), dtype, gen=g)
    bias = Strided((c_out,), dtype, (2,), gen=g) if with_bias else None
    out, ref = _run_conv(runner, dtype, x, wt, bias, stride, padding, dilation, groups)
    _check(out, ref, dtype, math.sqrt(c_in * k[0] * k[1] / groups))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "c_in,c_out,k,stride,padding,dilation,output_padding,groups",
    [
        (4, 6, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 2),
        (3, 5, (2, 3), (1, 2), (0, 1), (2, 1), (0, 1), 1),
        (2, 3, (1, 4), (1, 3), (0, 0), (1, 1), (0, 2), 1),
    ],
)
def test_conv_transpose2d(
    runner, dtype, c_in, c_out, k, stride, padding, dilation, output_padding, groups
) -> None:
    g = _gen(c_in * c_out)
    x = Strided((2, c_in, 5, 6), dtype, gen=g)
    wt = Strided((c_in, c_out // groups if c_out % groups == 0 else c_out, *k), dtype, gen=g)
    bias = Strided((wt.view.shape[1] * groups,), dtype, gen=g)
    out, ref = _run_conv(
        runner, dtype, x, wt, bias, stride, padding, dilation, groups, output_padding
    )
    _check(out, ref, dtype, math.sqrt(c_in * k[0] * k[1]))


def _run_conv_nd(runner, dtype, x, w, bias, stride, padding, dilation, groups, output_padding=None):
    """conv1d/2d/3d (by |x|'s rank; transposed when |output_padding| is given)
    through kn::conv on 5-D operands with a recording epilogue. Checks that
    the epilogue got every output element once, after its value was stored;
    returns the output and a float64 reference."""
    spatial = x.view.dim() - 2
    xd, wd, bd = x.view.double(), w.view.double(), None if bias is None else bias.view.double()
    if output_padding is None:
        conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
        ref = conv(xd, wd, bd, stride, padding, dilation, groups)
    else:
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[spatial - 1]
        ref = conv(xd, wd, bd, stride, padding, output_padding, groups, dilation)

    def dims3(values, fill):  # depth, height, width
        return [fill] * (3 - spatial) + list(values)

    def operand(t):  # as 5-D: size-1 dims of stride 0 before the spatial ones
        path, offset, *strides = t.args(runner.directory)
        return [path, offset, *strides[:2], *[0] * (3 - spatial), *strides[2:]]

    shape = [x.view.shape[0], x.view.shape[1], ref.shape[1], groups]
    shape += dims3(x.view.shape[2:], 1) + dims3(ref.shape[2:], 1) + dims3(w.view.shape[2:], 1)
    shape += dims3(stride, 1) + dims3(padding, 0) + dims3(dilation, 1)
    shape.append(int(output_padding is not None))
    bias_args = ["-"] if bias is None else bias.args(runner.directory)
    args = [*shape, *operand(x), *operand(w), *bias_args]
    out_path, calls_path, seen_path = runner("conv_nd", dtype, args, outputs=3)
    out = _read(out_path, dtype, ref.shape)
    calls = _read(calls_path, torch.int64, ref.shape)
    assert (calls == 1).all(), f"epilogue calls per element: {calls.unique().tolist()}"
    bits = torch.int16 if dtype == torch.bfloat16 else torch.int32  # NaN compares too
    assert torch.equal(_read(seen_path, dtype, ref.shape).view(bits), out.view(bits))
    return out, ref


CONV_ND_CASES = [
    # (x shape, c_out, kernel, stride, padding, dilation, groups, bias, channels_last)
    ((2, 5, 7, 9), 13, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, False),  # 13 % 6, 63 % 16
    ((1, 4, 11, 10), 6, (3, 3), (2, 2), (3, 3), (2, 2), 2, True, False),  # pad > kernel / 2
    ((2, 40, 13, 17), 150, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, False),  # 2 K and 2 co blocks
    ((1, 9, 3, 50), 7, (2, 5), (1, 2), (1, 0), (2, 1), 1, False, True),  # strided input rows
    ((3, 7, 5, 9), 11, (1, 1), (1, 1), (0, 0), (1, 1), 1, False, False),  # 1x1 read in place
    ((2, 6, 9, 7), 10, (1, 1), (1, 1), (0, 0), (1, 1), 1, True, True),  # 1x1 gathered
    ((1, 8, 9, 9), 10, (1, 1), (2, 2), (0, 0), (1, 1), 1, True, False),  # 1x1, stride 2
    ((2, 6, 8, 8), 12, (3, 3), (1, 1), (1, 1), (1, 1), 3, True, False),  # 4 channels per group
    ((1, 6, 12, 12), 12, (3, 3), (1, 1), (1, 1), (1, 1), 6, True, False),  # 2 channels per group
    ((1, 4, 6, 6), 4, (3, 3), (1, 1), (1, 1), (1, 1), 4, True, False),  # depthwise: direct
    ((2, 3, 5, 45), 3, (3, 3), (1, 1), (1, 1), (1, 1), 3, True, False),  # depthwise rows
    ((1, 4, 6, 53), 4, (3, 5), (2, 2), (2, 2), (1, 2), 4, False, False),  # ... stride 2
    ((1, 8, 4, 30), 4, (2, 3), (1, 1), (0, 4), (1, 1), 4, True, False),  # ... 2 in, wide pad
    ((2, 1, 8, 8), 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, False),  # one input channel
    ((2, 3, 50), 5, (4,), (3,), (2,), (2,), 1, True, False),  # conv1d
    ((1, 2, 300), 8, (3,), (1,), (1,), (1,), 1, False, False),  # conv1d, rows > pixel block
    ((2, 4, 5, 6, 7), 6, (3, 2, 3), (2, 1, 1), (1, 0, 2), (1, 2, 1), 2, True, False),  # conv3d
    ((1, 3, 4, 5, 6), 8, (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), 1, True, False),  # 1x1x1
    ((1, 2, 5, 4, 20), 2, (3, 1, 3), (1, 1, 1), (1, 0, 1), (2, 1, 1), 2, True, False),  # 3-D dw
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_ND_CASES)
def test_conv_nd_with_epilogue(conv_runner, dtype, case) -> None:
    x_shape, c_out, k, stride, padding, dilation, groups, with_bias, cl = case
    g = _gen(sum(x_shape) * c_out)
    x_strides = None
    if cl:  # channels last: channels innermost
        x_strides = list(torch.empty(x_shape).to(memory_format=torch.channels_last).stride())
    x = Strided(x_shape, dtype, x_strides, offset=3, gen=g)
    wt = Strided((c_out, x_shape[1] // groups, *k), dtype, gen=g)
    bias = Strided((c_out,), dtype, (3,), gen=g) if with_bias else None
    out, ref = _run_conv_nd(conv_runner, dtype, x, wt, bias, stride, padding, dilation, groups)
    _check(out, ref, dtype, math.sqrt(x_shape[1] // groups * math.prod(k)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose_with_epilogue(conv_runner, dtype) -> None:
    g = _gen(31)
    x = Strided((2, 4, 5, 3, 4), dtype, gen=g)
    wt = Strided((4, 3, 2, 3, 3), dtype, gen=g)
    bias = Strided((6,), dtype, gen=g)
    args = (bias, (2, 1, 2), (1, 1, 0), (1, 2, 1), 2)
    out, ref = _run_conv_nd(conv_runner, dtype, x, wt, *args, output_padding=(1, 0, 1))
    _check(out, ref, dtype, math.sqrt(4 * 18))


def test_conv_nan_propagates(conv_runner) -> None:
    """NaN in the input reaches exactly the outputs whose window covers it."""
    vals = torch.randn(2, 8, 10, 11, generator=_gen(32))
    vals[0, 3, 4, 5] = float("nan")
    vals[1, 0, 0, 0] = float("nan")
    x = Strided((2, 8, 10, 11), values=vals)
    wt = Strided((14, 8, 3, 3), gen=_gen(33))
    out, ref = _run_conv_nd(conv_runner, torch.float32, x, wt, None, (1, 1), (1, 1), (1, 1), 1)
    assert torch.isnan(out[0, :, 3:6, 4:7]).all() and torch.isnan(out[1, :, :2, :2]).all()
    assert torch.isnan(out).sum() == 14 * (9 + 4)
    _check(out, ref, torch.float32, math.sqrt(72))


# -- pooling ------------------------------------------------------------------------


def _pool_shape(x, out, k, stride, padding, dilation):
    n, c, h, w = x.shape
    return [n, c, h, w, out.shape[2], out.shape[3], *k, *stride, *padding, *dilation]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,stride,padding,dilation,ceil_mode",
    [
        ((2, 2), (2, 2), (0, 0), (1, 1), False),
        ((3, 3), (2, 2), (1, 1), (2, 2), True),
        ((3, 2), (2, 1), (1, 1), (1, 1), True),
        ((2, 3), (3, 2), (1, 0), (1, 2), False),
    ],
)
def test_max_pool2d(runner, dtype, k, stride, padding, dilation, ceil_mode) -> None:
    vals = torch.randn(2, 3, 11, 13, generator=_gen(7)).to(dtype)
    vals[0, 0, 3, 4] = float("nan")
    vals[1, 2, 5:, :] = float("-inf")
    vals[0, 1, 2:4, 2:4] = 0.0  # ties: the first wins
    x = Strided((2, 3, 11, 13), dtype, (3 * 11 * 13 * 2, 11 * 13 * 2, 13 * 2, 2), values=vals)
    ref, ref_idx = F.max_pool2d(x.view, k, stride, padding, dilation, ceil_mode, True)
    shape = _pool_shape(x.view, ref, k, stride, padding, dilation)
    paths = runner("max_pool", dtype, [*shape, 1, *x.args(runner.directory)], outputs=2)
    out = _read(paths[0], dtype, ref.shape)
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(_read(paths[1], torch.int64, ref.shape), ref_idx)
    (values_only,) = runner("max_pool", dtype, [*shape, 0, *x.args(runner.directory)])
    torch.testing.assert_close(
        _read(values_only, dtype, ref.shape), ref, rtol=0, atol=0, equal_nan=True
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "k,stride,padding,ceil_mode,count_include_pad,divisor",
    [
        ((2, 2), (2, 2), (0, 0), False, True, None),
        ((3, 3), (2, 2), (1, 1), True, False, None),
        ((3, 2), (2, 3), (1, 1), True, True, None),
        ((2, 3), (1, 2), (1, 1), False, True, 5),
    ],
)
def test_avg_pool2d(
    runner, dtype, k, stride, padding, ceil_mode, count_include_pad, divisor
) -> None:
    x = Strided((2, 3, 10, 9), dtype, (270, 1, 27, 3), gen=_gen(8))  # channels last
    ref = F.avg_pool2d(x.view.float(), k, stride, padding, ceil_mode, count_include_pad, divisor)
    shape = _pool_shape(x.view, ref, k, stride, padding, (1, 1))
    args = [*shape, int(count_include_pad), divisor or 0, *x.args(runner.directory)]
    (path,) = runner("avg_pool", dtype, args)
    out = _read(path, dtype, ref.shape)
    if dtype == torch.float32:
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    else:
        torch.testing.assert_close(out.float(), ref.bfloat16().float(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,out_size", [((10, 12), (3, 5)), ((7, 7), (7, 7)), ((4, 5), (6, 2))])
def test_adaptive_avg_pool2d(runner, dtype, size, out_size) -> None:
    x = Strided((2, 3, *size), dtype, gen=_gen(9))
    ref = F.adaptive_avg_pool2d(x.view.float(), out_size)
    args = [2, 3, *size, *out_size, *x.args(runner.directory)]
    (path,) = runner("adaptive", dtype, args)
    out = _read(path, dtype, ref.shape)
    if dtype == torch.float32:
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    else:
        torch.testing.assert_close(out.float(), ref.bfloat16().float(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_wide_rows(runner, dtype) -> None:
    """Output rows longer than one accumulator tile (256 columns)."""
    x = Strided((1, 2, 3, 700), dtype, (2100, 1, 1400, 2), gen=_gen(13))
    d = runner.directory
    ref, ref_idx = F.max_pool2d(x.view, (2, 3), 1, 1, (1, 2), False, True)
    shape = _pool_shape(x.view, ref, (2, 3), (1, 1), (1, 1), (1, 2))
    out, idx = runner("max_pool", dtype, [*shape, 1, *x.args(d)], outputs=2)
    assert torch.equal(_read(out, dtype, ref.shape), ref)
    assert torch.equal(_read(idx, torch.int64, ref.shape), ref_idx)
    ref = F.avg_pool2d(x.view.float(), 3, 1, 1)
    shape = _pool_shape(x.view, ref, (3, 3), (1, 1), (1, 1), (1, 1))
    (out,) = runner("avg_pool", dtype, [*shape, 1, 0, *x.args(d)])
    _check(_read(out, dtype, ref.shape), ref, dtype)


def test_kernel_errors(runner) -> None:
    x, w = Strided((1, 4, 3, 3)), Strided((3, 2, 1, 1))
    d = runner.directory
    shape = [1, 4, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0]  # groups 2 does not divide 3
    err = runner("conv", torch.float32, [*shape, *x.args(d), *w.args(d), "-"], code=16)
    assert "groups 2 must divide" in err
    q = Strided((1, 3, 2, 4))
    args = ["none", 1, 3, 2, 2, 2, 4, 4, 0.5, 0, *q.args(d), *q.args(d), *q.args(d), "-", 0]
    err = runner("sdpa", torch.float32, args, code=16)
    assert "3 query heads are not a multiple of 2" in err


# -- attention ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["portable", "x86-64-v3"])
def sdpa_runner(
    request: pytest.FixtureRequest,
    runner: Callable[..., list[Path]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., list[Path]]:
    """The runner, and one built with -march=x86-64-v3 so that the AVX2/FMA
    micro-kernels and exp of aotc_cpu_attention.h run too."""
    if request.param == "portable":
        return runner
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("needs an AVX2/FMA CPU")
    return _make_runner(tmp_path_factory.mktemp("extern_runner_v3"), ["-march=x86-64-v3"])


def _sdpa_reference(q, k, v, mask, causal, scale):
    """Math attention in float64 with _safe_softmax semantics (a fully masked
    row gives 0) and grouped heads; returns (out, logsumexp)."""
    q, k, v = q.double(), k.double(), v.double()
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        keep = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
        s = s.masked_fill(~keep, float("-inf"))
    if mask is not None:
        s = s + (
            torch.zeros(mask.shape, dtype=torch.double).masked_fill(~mask, float("-inf"))
            if mask.dtype == torch.bool
            else mask.double()
        )
    lse = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1)
    dead = (s == float("-inf")).all(dim=-1, keepdim=True)
    p = torch.where(dead, torch.zeros_like(p), p)
    return p @ v, lse


def _run_sdpa(
    runner, dtype, q: Strided, k: Strided, v: Strided, mask: Strided | None, causal, scale=None
):
    b, h, length, e = q.view.shape
    hk, s_len, ev = k.view.shape[1], k.view.shape[2], v.view.shape[3]
    scale = 1.0 / math.sqrt(e) if scale is None else scale
    d = runner.directory
    mask_dtype = "none" if mask is None else _DTYPE_NAMES[mask.view.dtype]
    mask_args = ["-"] if mask is None else mask.args(d, 4)
    args = [
        mask_dtype,
        b,
        h,
        hk,
        length,
        s_len,
        e,
        ev,
        repr(scale),
        int(causal),
        *q.args(d),
        *k.args(d),
        *v.args(d),
        *mask_args,
        1,
    ]
    out_path, lse_path = runner("sdpa", dtype, args, outputs=2)
    mask_view = None
    if mask is not None:
        mask_view = mask.view
    ref, ref_lse = _sdpa_reference(q.view, k.view, v.view, mask_view, causal, scale)
    return (
        _read(out_path, dtype, ref.shape),
        ref,
        _read(lse_path, torch.float32, ref_lse.shape),
        ref_lse,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "length,s_len,causal", [(37, 70, False), (70, 70, True), (20, 50, True), (50, 20, True)]
)
def test_sdpa(sdpa_runner, dtype, length, s_len, causal) -> None:
    g = _gen(length * s_len)
    b, h, e, ev = 2, 3, 16, 24
    # q laid out as [B, L, H, E] in memory (a transposed projection), k and v contiguous
    q = Strided((b, h, length, e), dtype, (length * h * e, e, h * e, 1), gen=g)
    k = Strided((b, h, s_len, e), dtype, gen=g)
    v = Strided((b, h, s_len, ev), dtype, gen=g)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, None, causal)
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)
    if dtype == torch.float32:
        eager = F.scaled_dot_product_attention(q.view, k.view, v.view, is_causal=causal)
        torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_masks_and_gqa(sdpa_runner, dtype) -> None:
    g = _gen(10)
    b, h, hk, length, s_len, e = 2, 4, 2, 9, 67, 8
    q = Strided((b, h, length, e), dtype, gen=g)
    k = Strided((b, hk, s_len, e), dtype, gen=g)
    v = Strided((b, hk, s_len, e), dtype, gen=g)
    keep = torch.rand(length, s_len, generator=g) > 0.4
    keep[3] = False  # a fully masked row gives 0
    bool_mask = Strided((b, h, length, s_len), torch.bool, (0, 0, s_len, 1), values=keep)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, bool_mask, False, scale=0.3)
    assert (out[:, :, 3] == 0).all()
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)
    add = torch.randn(b, 1, length, s_len, generator=g)
    add[:, :, 5, :10] = float("-inf")
    float_mask = Strided(
        (b, h, length, s_len),
        torch.float32,
        (length * s_len, 0, s_len, 1),
        values=add.expand(b, h, length, s_len),
    )
    out, ref, _, _ = _run_sdpa(sdpa_runner, dtype, q, k, v, float_mask, False)
    _check(out, ref, dtype)


def test_sdpa_nan_propagates(sdpa_runner) -> None:
    g = _gen(11)
    q = Strided((1, 2, 5, 4), gen=g)
    k_vals = torch.randn(1, 2, 6, 4, generator=g)
    k_vals[0, 1, 2, 0] = float("nan")  # every query of head 1 sees it
    k = Strided((1, 2, 6, 4), values=k_vals)
    v = Strided((1, 2, 6, 4), gen=g)
    out, ref, _, _ = _run_sdpa(sdpa_runner, torch.float32, q, k, v, None, True)
    assert not torch.isnan(out[0, 0]).any()
    assert not torch.isnan(out[0, 1, :2]).any() and torch.isnan(out[0, 1, 2:]).all()
    _check(out, ref, torch.float32)


# Edges of the tiling in aotc_cpu_attention.h ([Note: attention tiles]): 32-row
# tiles (16-row register groups), 64-key blocks, 6-wide micro-kernel groups.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "length,s_len,e,ev,causal",
    [
        (100, 150, 20, 36, False),  # no length a multiple of a tile; head_dim % 8 != 0
        (130, 130, 64, 64, True),  # causal, last tile of 2 rows
        (70, 200, 32, 40, True),  # causal with L < S: keys past the last row unused
        (200, 70, 24, 8, True),  # causal with L > S: late rows see every key
        (1, 130, 128, 128, False),  # one query row (decode), head_dim 128
        (33, 7, 5, 3, False),  # fewer keys than a micro-kernel group twice over
    ],
)
def test_sdpa_tiling_edges(sdpa_runner, dtype, length, s_len, e, ev, causal) -> None:
    g = _gen(length * 1000 + s_len)
    b, h = 1, 3
    q = Strided((b, h, length, e), dtype, gen=g)
    k = Strided((b, h, s_len, e), dtype, gen=g)
    v = Strided((b, h, s_len, ev), dtype, gen=g)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, None, causal)
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_strided_kv_and_gqa(sdpa_runner, dtype) -> None:
    """Float32 K and V are read in place: K from a [B, S, H, E] projection,
    V with its last dim strided (stored [B, H, Ev, S]); 8 query heads share
    2 key/value heads, causal over several tiles and blocks."""
    g = _gen(21)
    b, h, hk, length, s_len, e, ev = 2, 8, 2, 90, 90, 16, 12
    q = Strided((b, h, length, e), dtype, gen=g)
    k = Strided((b, hk, s_len, e), dtype, (s_len * hk * e, e, hk * e, 1), gen=g)
    v = Strided((b, hk, s_len, ev), dtype, (hk * ev * s_len, ev * s_len, 1, s_len), gen=g)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, None, True)
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_masked_rows_across_blocks(sdpa_runner, dtype) -> None:
    """Masks over several key blocks: rows masked in whole blocks (the running
    max starts at -inf and is rescaled from it), fully masked rows (0, lse
    -inf), additive -inf; the bool mask broadcasts over batch and heads."""
    g = _gen(22)
    b, h, length, s_len, e = 2, 2, 40, 150, 16
    q = Strided((b, h, length, e), dtype, gen=g)
    k = Strided((b, h, s_len, e), dtype, gen=g)
    v = Strided((b, h, s_len, e), dtype, gen=g)
    keep = torch.rand(length, s_len, generator=g) > 0.5
    keep[0] = False  # fully masked
    keep[1, :140] = False  # only the last block's keys
    keep[2] = False
    keep[2, 70] = True  # a single key in the middle block
    keep[39] = False  # fully masked in the second 16-row group
    bool_mask = Strided((b, h, length, s_len), torch.bool, (0, 0, s_len, 1), values=keep)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, bool_mask, False)
    assert (out[:, :, 0] == 0).all() and (out[:, :, 39] == 0).all()
    assert (lse[:, :, 0] == float("-inf")).all()
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)
    add = torch.randn(b, h, length, s_len, generator=g) * 3
    add[:, :, 5, :128] = float("-inf")  # two whole blocks
    add[:, :, 6] = float("-inf")  # the whole row
    add[1, 0, 7, 64:] = float("-inf")
    float_mask = Strided((b, h, length, s_len), dtype, values=add)  # bf16 with bf16
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, float_mask, False)
    assert (out[:, :, 6] == 0).all()
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_wide_scores(sdpa_runner, dtype) -> None:
    """Scores spread over hundreds, so exp runs over its whole range down to
    underflow and the running max moves by large steps between blocks. Small
    integer q and k make the scores exact, so what differs from float64 is
    exp and the sums alone."""
    g = _gen(24)
    b, h, length, s_len, e = 1, 2, 40, 200, 8

    def ints(*shape: int) -> torch.Tensor:
        return torch.randint(-5, 6, shape, generator=g).float()

    q = Strided((b, h, length, e), dtype, values=ints(b, h, length, e))
    k = Strided((b, h, s_len, e), dtype, values=ints(b, h, s_len, e))
    v = Strided((b, h, s_len, e), dtype, gen=g)
    out, ref, lse, ref_lse = _run_sdpa(sdpa_runner, dtype, q, k, v, None, False, scale=1.0)
    _check(out, ref, dtype)
    _check(lse, ref_lse, torch.float32, 100.0)


def test_sdpa_nan_across_blocks(sdpa_runner) -> None:
    """NaN in a query row, in a key of a later block (after the first rescale)
    and in the additive mask reach exactly the outputs eager's give NaN."""
    g = _gen(23)
    b, h, length, s_len, e = 1, 2, 48, 140, 8
    q_vals = torch.randn(b, h, length, e, generator=g)
    q_vals[0, 0, 3, 2] = float("nan")
    k_vals = torch.randn(b, h, s_len, e, generator=g)
    k_vals[0, 1, 100, 0] = float("nan")  # third block, every row of head 1
    add = torch.randn(b, h, length, s_len, generator=g)
    add[0, 0, 10, 70] = float("nan")
    q = Strided((b, h, length, e), values=q_vals)
    k = Strided((b, h, s_len, e), values=k_vals)
    v = Strided((b, h, s_len, e), gen=g)
    mask = Strided((b, h, length, s_len), values=add)
    out, ref, _, _ = _run_sdpa(sdpa_runner, torch.float32, q, k, v, mask, False)
    assert torch.isnan(out[0, 0, 3]).all() and torch.isnan(out[0, 0, 10]).all()
    assert torch.isnan(out[0, 1]).all()
    assert not torch.isnan(out[0, 0, 11:]).any()
    _check(out, ref, torch.float32)


# -- lowering + emitted call sites ------------------------------------------------------


def _input(name: str, sizes: Sequence[object], dtype: torch.dtype = torch.float32) -> Buffer:
    layout = Layout.contiguous([sympy.sympify(s) for s in sizes])
    return Buffer(name, dtype, layout, BufferKind.INPUT)


def _buffers(tensors: dict[str, torch.Tensor], sizes: dict | None = None) -> dict[str, Buffer]:
    """An input Buffer per tensor (|sizes| overrides some with symbolic sizes)."""
    sizes = sizes or {}
    return {n: _input(n, sizes.get(n, t.shape), t.dtype) for n, t in tensors.items()}


def _permuted(buffer: Buffer, dims: Sequence[int]) -> ReinterpretView:
    sizes, strides = buffer.layout.sizes, buffer.layout.strides
    return ReinterpretView(
        buffer, Layout(tuple(sizes[d] for d in dims), tuple(strides[d] for d in dims))
    )


def _lower(fn: Callable[..., object], *args: object, **kwargs: object):
    ctx = LoweringContext()
    result = fn(ctx, *args, **kwargs)
    (node,) = ctx.nodes
    assert isinstance(node, ExternKernel)
    return node, result


class _Printer:
    """size_expr for the tests: symbols read ctx.sym, FloorDiv is `/`."""

    def __init__(self, symbols: Sequence[sympy.Symbol]) -> None:
        self.symbols = list(symbols)

    def __call__(self, expr: sympy.Expr) -> str:
        if expr.is_Integer:
            return f"int64_t{{{int(expr)}}}"
        if expr.is_Symbol:
            return f"ctx.sym[{self.symbols.index(expr)}]"
        if isinstance(expr, FloorDiv):
            return f"({self(expr.args[0])} / {self(expr.args[1])})"
        if expr.is_Add or expr.is_Mul:
            return "(" + (" + " if expr.is_Add else " * ").join(map(self, expr.args)) + ")"
        raise AssertionError(f"cannot print {expr}")


E2E_MAIN = r"""
struct Case { const char* name; int32_t (*fn)(const aotc_rt::KernelContext&); };
static const Case kCases[] = {
%CASES%
};

// argv: case, symbol values ("-" or comma-separated), then one entry per
// buffer id: "in:<path>" or "out:<path>:<bytes>".
int main(int argc, char** argv) {
  aotc_host_t host = make_host();
  aotc_abi_status_t status{};
  std::vector<int64_t> sym;
  for (std::string s = argv[2]; s != "-" && !s.empty();) {
    size_t comma = std::min(s.find(','), s.size());
    sym.push_back(std::stoll(s.substr(0, comma)));
    s = s.substr(std::min(comma + 1, s.size()));
  }
  std::vector<std::vector<char>> storage;
  std::vector<void*> buf;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    size_t colon = arg.rfind(':');
    storage.push_back(arg[0] == 'i' ? read_bytes(arg.substr(3))
                                    : std::vector<char>(std::stoull(arg.substr(colon + 1))));
  }
  for (auto& s : storage) buf.push_back(s.data());
  aotc_rt::KernelContext ctx{&host, nullptr, buf.data(), sym.data(), &status};
  for (const Case& c : kCases) {
    if (std::string(c.name) != argv[1]) continue;
    if (int32_t code = c.fn(ctx)) {
      std::fprintf(stderr, "code %d: %s\n", code, status.message);
      return code;
    }
    for (int i = 3; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg[0] != 'o') continue;
      auto& s = storage[static_cast<size_t>(i - 3)];
      write_bytes(arg.substr(4, arg.rfind(':') - 4), s.data(), s.size());
    }
    return 0;
  }
  return 98;
}
"""


class _Lowered:
    """One op lowered to an ExternKernel, the tensors behind its input
    buffers, its symbol values and eager's outputs."""

    def __init__(self, name, lowered, tensors, expected, symbols=None, dead=(), scale=1.0):
        self.name, (self.node, _) = name, lowered
        self.tensors, self.expected, self.scale = tensors, expected, scale
        self.symbols = dict(symbols or {})
        live = [b.name for b in self.node.outputs if b.name not in dead]
        self.ids = {name: k for k, name in enumerate([*tensors, *live])}

    def source(self) -> str:
        return emit_extern(self.name, self.node, self.ids, _Printer(list(self.symbols)))

    def run_and_check(self, exe: Path, directory: Path) -> None:
        args = []
        for name, tensor in self.tensors.items():
            _to_numpy(tensor).tofile(directory / f"{self.name}_{name}.bin")
            args.append(f"in:{directory / f'{self.name}_{name}.bin'}")
        outputs = []
        for buffer, expected in zip(self.node.outputs, self.expected, strict=True):
            if buffer.name not in self.ids:
                continue
            shape = [int(sympy.sympify(s).subs(self.symbols)) for s in buffer.layout.sizes]
            path = directory / f"{self.name}_{buffer.name}.out"
            args.append(f"out:{path}:{math.prod(shape) * buffer.dtype.itemsize}")
            outputs.append((path, buffer.dtype, shape, expected))
        syms = ",".join(str(v) for v in self.symbols.values()) or "-"
        proc = subprocess.run([str(exe), self.name, syms, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        for path, dtype, shape, expected in outputs:
            out = _read(path, dtype, shape)
            if dtype == torch.int64:
                assert torch.equal(out, expected), self.name
            else:
                _check(out, expected, dtype, self.scale)


def _lowered_cases() -> list[_Lowered]:
    g, aten = _gen(12), torch.ops.aten
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    cases = []
    # addmm with a linear layer's permuted weight and a 1-D bias
    t = {"x": rand(7, 10), "w": rand(12, 10), "b": rand(12)}
    B = _buffers(t)
    low = _lower(extern.lower_addmm, B["b"], B["x"], _permuted(B["w"], [1, 0]), alpha=0.5)
    cases.append(_Lowered("addmm", low, t, [torch.addmm(t["b"], t["x"], t["w"].t(), alpha=0.5)]))
    # bmm in bfloat16 with a transposed operand
    t = {"a": rand(3, 4, 5).bfloat16(), "bb": rand(3, 6, 5).bfloat16()}
    B = _buffers(t)
    low = _lower(extern.lower_bmm, B["a"], _permuted(B["bb"], [0, 2, 1]))
    ref = t["a"].double() @ t["bb"].double().transpose(1, 2)
    cases.append(_Lowered("bmm", low, t, [ref], scale=2.0))
    # conv1d; a transposed grouped conv2d with a dynamic height
    t = {"x": rand(2, 4, 30), "w": rand(6, 4, 3)}
    B = _buffers(t)
    low = _lower(extern.lower_convolution, B["x"], B["w"], None, [2], [1], [2], False, [0], 1)
    cases.append(_Lowered("conv1d", low, t, [F.conv1d(t["x"], t["w"], None, 2, 1, 2)], scale=3))
    s0 = size_symbol("s0")
    t = {"x": rand(1, 4, 7, 5), "w": rand(4, 3, 3, 3), "b": rand(6)}
    B = _buffers(t, {"x": [1, 4, s0, 5]})
    args = (B["x"], B["w"], B["b"], [2, 2], [1, 1], [1, 1], True, [1, 0], 2)
    ref = F.conv_transpose2d(t["x"], t["w"], t["b"], 2, 1, (1, 0), 2)
    cases.append(_Lowered("deconv", _lower(extern.lower_convolution, *args), t, [ref], {s0: 7}))
    # max pooling with indices live, then dead; avg and adaptive pooling, unbatched
    t = {"x": rand(2, 3, 9, 8)}
    low = _lower(extern.lower_max_pool2d_with_indices, _buffers(t)["x"], [3, 3], [2, 2], [1, 1],
                 [1, 1], True)  # fmt: skip
    ref = list(F.max_pool2d(t["x"], 3, 2, 1, 1, True, True))
    cases.append(_Lowered("maxpool", low, t, ref))
    cases.append(_Lowered("maxpool_values", low, t, ref, dead=[low[1][1].name]))
    t = {"x": rand(3, 10, 9)}
    low = _lower(extern.lower_avg_pool2d, _buffers(t)["x"], [3, 2], [2, 2], [1, 0], True, False)
    ref = F.avg_pool2d(t["x"], (3, 2), 2, (1, 0), True, False)
    cases.append(_Lowered("avgpool", low, t, [ref]))
    low = _lower(extern.lower_adaptive_avg_pool2d, _buffers(t)["x"], [4, 3])
    cases.append(_Lowered("adaptive", low, t, [F.adaptive_avg_pool2d(t["x"], (4, 3))]))
    # attention as in gpt.py: q, k, v are strided views of one [B, L, 3, H, E] projection
    t = {"qkv": rand(2, 12, 3, 2, 8)}
    qkv = _buffers(t)["qkv"]
    st = qkv.layout.strides
    q, k, v = (
        ReinterpretView(qkv, Layout((2, 2, 12, 8), (st[0], st[3], st[1], st[4]), i * st[2]))
        for i in range(3)
    )
    low = _lower(extern.lower_sdpa, q, k, v, is_causal=True)
    qt, kt, vt = (t["qkv"][:, :, i].transpose(1, 2) for i in range(3))
    ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    cases.append(_Lowered("sdpa", low, t, [ref]))
    # the flash-for-cpu form: 3-d operands, a float mask broadcast over the batch, logsumexp
    mask = rand(5, 7).masked_fill(torch.rand(5, 7, generator=g) > 0.7, float("-inf"))
    t = {"q": rand(2, 5, 4), "k": rand(2, 7, 4), "m": mask}
    B = _buffers(t)
    low = _lower(extern.lower_sdpa_flash_for_cpu, B["q"], B["k"], B["k"], attn_mask=B["m"],
                 scale=0.5)  # fmt: skip
    ref = aten._scaled_dot_product_flash_attention_for_cpu(
        t["q"][:, None], t["k"][:, None], t["k"][:, None], attn_mask=mask, scale=0.5
    )
    cases.append(_Lowered("flash", low, t, [r[:, 0] for r in ref]))
    return cases


def test_lowered_calls(tmp_path: Path) -> None:
    cases = _lowered_cases()
    table = "\n".join(f'  {{"{c.name}", {c.name}}},' for c in cases)
    source = "\n".join(
        [HOST_SOURCE.replace('"aotc_cpu_kernels.h"', f'"{EXTERN_HEADER}"')]
        + [c.source() for c in cases]
        + [E2E_MAIN.replace("%CASES%", table)]
    )
    exe = _compile(source, tmp_path, "lowered")
    for case in cases:
        case.run_and_check(exe, tmp_path)


# -- lowering without C++ ---------------------------------------------------------------


def test_registers_ops() -> None:
    registry = LoweringRegistry()
    extern.register(registry)
    aten = torch.ops.aten
    for op in (
        aten.mm.default,
        aten.addmm.default,
        aten.bmm.default,
        aten.convolution.default,
        aten.max_pool2d_with_indices.default,
        aten.avg_pool2d.default,
        aten._adaptive_avg_pool2d.default,
        aten.adaptive_max_pool2d.default,
        aten.scaled_dot_product_attention.default,
        aten._scaled_dot_product_flash_attention_for_cpu.default,
    ):
        assert op in registry


def test_output_sizes_are_symbolic() -> None:
    s0 = size_symbol("s0")
    node, out = _lower(
        extern.lower_convolution,
        _input("x", [2, 3, s0, 9]),
        _input("w", [4, 3, 3, 3]),
        None,
        [2, 2],
        [1, 1],
        [1, 1],
        False,
        [0, 0],
        1,
    )
    assert out.layout.sizes[2] == FloorDiv(s0 - 1, 2) + 1
    assert out.layout.sizes[3] == 5
    # ceil_mode with stride <= kernel never drops a window: symbolic sizes are fine
    _, (values, _) = _lower(
        extern.lower_max_pool2d_with_indices,
        _input("p", [1, 2, s0, 8]),
        [3, 3],
        [2, 2],
        [0, 0],
        [1, 1],
        True,
    )
    assert values.layout.sizes[2] == FloorDiv(s0 - 2, 2) + 1
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        _lower(extern.lower_avg_pool2d, _input("p", [1, 2, s0, 8]), [2, 2], [3, 3], [1, 1], True)


@pytest.mark.parametrize(
    "size,k,s,p,d,ceil",
    [
        (10, 3, 2, 1, 1, True),
        (11, 3, 2, 1, 2, True),
        (5, 2, 2, 1, 1, True),
        (7, 3, 3, 0, 1, False),
        (6, 3, 2, 1, 1, True),
    ],
)
def test_pool_output_size_matches_torch(size, k, s, p, d, ceil) -> None:
    ref = F.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, d, ceil).shape[-1]
    assert extern.pool_output_size(sympy.Integer(size), k, s, p, d, ceil) == ref


def test_refuses_unsupported() -> None:
    with pytest.raises(NotImplementedError, match="float32 or bfloat16"):
        _lower(extern.lower_mm, _input("a", [2, 2], torch.int64), _input("b", [2, 2], torch.int64))
    with pytest.raises(NotImplementedError, match="dropout"):
        q = _input("q", [1, 1, 2, 2])
        _lower(extern.lower_sdpa, q, q, q, None, 0.1)
    with pytest.raises(NotImplementedError, match="conv1d, conv2d and conv3d"):
        _lower(
            extern.lower_convolution,
            _input("x", [1, 1, 2, 2, 2, 2]),
            _input("w", [1, 1, 1, 1, 1, 1]),
            None,
            [1, 1, 1, 1],
            [0, 0, 0, 0],
            [1, 1, 1, 1],
            False,
            [0, 0, 0, 0],
            1,
        )
