"""C++ loop-kernel codegen (aot/codegen/cpp): golden checks of the printers,
then hand-built LoopKernels (tests/cpp_codegen_cases.py) compiled with g++ and
run against torch.

All compiled cases go into one test program (one g++ call, built once per
module by the ``program`` fixture): each case's kernel is generated, wrapped
in a call with a fake host whose parallel_for runs chunks inline, and fed
buffers from .bin files. The same program also runs under ASan + UBSan.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from cpp_codegen_cases import (
    CASES,
    S0,
    S1,
    Case,
    input_buffer,
    pointwise,
    reduction,
    size_expr,
    sizes,
)

from aot.codegen.cpp.kernel import generate_loop_kernel, graph_buffer_dtypes
from aot.codegen.cpp.ops_printer import (
    CodegenError,
    CppIndexPrinter,
    CppOpsHandler,
    CppValue,
    CppWriter,
    cpp_literal,
)
from aot.ir.graph import LoweredGraph
from aot.ir.ops import OP_NAMES
from aot.ir.symbols import FloorDiv, ModularIndexing, index_vars
from aot.scheduler.schedule import LoopKernel

REPO = Path(__file__).resolve().parent.parent
INCLUDES = [REPO / "aot" / "codegen" / "cpp" / "include", REPO / "cpp_runtime" / "include"]
# ---------------------------------------------------------------------------
# Printer and handler (no compiler)
# ---------------------------------------------------------------------------


def _printer() -> CppIndexPrinter:
    names = {S0: "s0", S1: "s1"}
    return CppIndexPrinter(lambda s: names.get(s, s.name))


def test_index_printer() -> None:
    p = _printer()
    i0, i1 = index_vars(2)
    assert p(i0 * 64 + i1) == "i1 + i0 * 64"
    assert p(FloorDiv(i0, 4)) == "(i0 / 4)"
    assert p(ModularIndexing(i0, 4, 8)) == "((i0 / 4) % 8)"
    assert p(ModularIndexing(i0 + i1, 1, S0)) == "((i0 + i1) % s0)"
    # The quotient simplifies to an Add (i0 + i1 // 64): `%` must wrap all of it
    # (HF models with a dynamic sequence length read token ids at i0 % s0).
    assert p(ModularIndexing(i1 + 64 * i0, 64, S0)) == "((i0 + (i1 / 64)) % s0)"
    assert p(FloorDiv(i0 * S0 + i1, S1)) == "((i1 + i0 * s0) / s1)"
    assert p(i0 - 2 * i1 - 1) == "i0 - i1 * 2 - 1"
    assert p(sympy.Max(i1, 2) * i0) == "i0 * std::max<int64_t>(2, i1)"
    assert p(sympy.Integer(2**40) * i0) == "i0 * 1099511627776LL"
    assert p(S0**2) == "s0 * s0"
    with pytest.raises(CodegenError, match="cannot print"):
        p(sympy.floor(i0 / 3))


def test_literals() -> None:
    assert cpp_literal(0.1, torch.float32) == "0.1f"
    assert cpp_literal(1e20, torch.float32) == "1.0e+20f"
    assert cpp_literal(float("-inf"), torch.float32) == "-std::numeric_limits<float>::infinity()"
    assert cpp_literal(float("nan"), torch.float64) == "std::numeric_limits<double>::quiet_NaN()"
    assert cpp_literal(-(2**63), torch.int64) == "std::numeric_limits<int64_t>::min()"
    assert cpp_literal(5, torch.int8) == "static_cast<int8_t>(5)"
    assert cpp_literal(1.0, torch.bfloat16) == "static_cast<uint16_t>(0x3f80)"
    assert cpp_literal(True, torch.bool) == "true"


def _handler(dtypes: dict[str, torch.dtype]) -> tuple[CppOpsHandler, CppWriter]:
    writer = CppWriter()
    return CppOpsHandler(writer, _printer(), dtypes, lambda n: f"p_{n}"), writer


def test_handler_covers_protocol() -> None:
    missing = [name for name in OP_NAMES if not callable(getattr(CppOpsHandler, name, None))]
    assert missing == []


def test_cse_and_masked_guard() -> None:
    ops, writer = _handler({"x": torch.float32})
    i0 = index_vars(1)[0]
    a = ops.exp(ops.load("x", i0))
    b = ops.exp(ops.load("x", i0))
    assert a == b  # computed once
    mask = ops.lt(ops.index_expr(i0, torch.int64), ops.constant(4, torch.int64))
    m = ops.masked(mask, lambda: ops.load("x", i0 - 4 + 8), 0.0)
    text = "\n".join(writer.lines)
    assert text.count("std::exp") == 1
    guarded = text[text.index("if (") :]
    assert "p_x[i0 + 4]" in guarded and "p_x[i0 + 4]" not in text[: text.index("if (")]
    assert m.dtype == torch.float32 and f"float {m.expr} = 0.0f;" in text
    # The guarded load is not visible to CSE after the block.
    ops.load("x", i0 + 4)
    assert "\n".join(writer.lines).count("p_x[i0 + 4]") == 2


def test_typed_locals_wrap_small_ints() -> None:
    ops, writer = _handler({"a": torch.int8})
    a = ops.load("a", index_vars(1)[0])
    s = ops.add(a, a)
    assert s.dtype == torch.int8
    assert (
        writer.lines[-1] == f"const int8_t {s.expr} = aotc_math::wrapping_add({a.expr}, {a.expr});"
    )
    bf = CppValue("h", torch.bfloat16)
    assert ops.to_dtype(bf, torch.float32).dtype == torch.float32
    assert "aotc_math::bf16_to_float(h)" in writer.lines[-1]


def test_unknown_buffer_dtype_is_an_error() -> None:
    x = input_buffer("x", torch.float32, 4)
    out = pointwise("out", torch.float32, sizes(4), lambda ops, i: x.make_loader()(ops, i))
    kernel = LoopKernel("k", [out], sizes(4))
    with pytest.raises(CodegenError, match="'x' whose dtype is unknown"):
        generate_loop_kernel(kernel, {"x": 0, "out": 1}, size_expr, "k:0")


def test_misaligned_local_reduction_is_an_error() -> None:
    x = input_buffer("x", torch.float32, 4, 8)
    red = reduction(
        "r",
        torch.float32,
        sizes(4),
        sizes(8),
        "sum",
        lambda ops, i, r: x.make_loader()(ops, [i[0], r[0]]),
    )
    out = pointwise("out", torch.float32, sizes(4), lambda ops, i: ops.load("r", i[0] + 1))
    kernel = LoopKernel("k", [red, out], sizes(4), sizes(8), {"r"})
    with pytest.raises(CodegenError, match="aligned index"):
        generate_loop_kernel(kernel, {"x": 0, "out": 1}, size_expr, "k:0", {"x": torch.float32})


def test_stored_outer_value_is_reused() -> None:
    # A reduction stored to memory and read later in the same kernel at the
    # aligned index comes from its register, not from a reload.
    x = input_buffer("x", torch.float32, 4, 8)
    lx = x.make_loader()
    total = reduction(
        "total", torch.float32, sizes(4), sizes(8), "sum", lambda ops, i, r: lx(ops, [i[0], r[0]])
    )
    out = pointwise(
        "out",
        torch.float32,
        sizes(4, 8),
        lambda ops, i: ops.sub(lx(ops, i), ops.load("total", i[0])),
    )
    kernel = LoopKernel("k", [total, out], sizes(4), sizes(8))
    ids = {"x": 0, "total": 1, "out": 2}
    source = generate_loop_kernel(kernel, ids, size_expr, "k:0", {"x": torch.float32})
    assert "p_total[i0] = acc" in source
    assert "= p_total[" not in source and "const float* p_total" not in source
    assert source.startswith("// k:0\n// origins: fx_total, fx_out\n")


def test_graph_buffer_dtypes() -> None:
    x = input_buffer("x", torch.bfloat16, 4)
    out = pointwise("out", torch.int32, sizes(4), lambda ops, i: ops.constant(1, torch.int32))
    graph = LoweredGraph("m", [x], ["x"], [], [out], [out], ["out"])
    assert graph_buffer_dtypes(graph) == {"x": torch.bfloat16, "out": torch.int32}


# ---------------------------------------------------------------------------
# The test program
# ---------------------------------------------------------------------------

_HOST = r"""
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "aotc_cpu.h"
#include "aotc_cpu_math.h"

// Runs the chunks inline, in order, |grain| at a time (as a pool would split).
static void inline_parallel_for(void*, void*, int64_t begin, int64_t end, int64_t grain,
                                aotc_abi_range_fn fn, void* fn_ctx) {
  for (int64_t b = begin; b < end; b += grain) fn(fn_ctx, b, std::min(end, b + grain));
}

static std::vector<unsigned char> read_file(const char* path) {
  std::vector<unsigned char> data;
  FILE* f = std::fopen(path, "rb");
  if (!f) { std::perror(path); std::exit(2); }
  unsigned char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    data.insert(data.end(), chunk, chunk + n);
  }
  std::fclose(f);
  return data;
}

static void write_file(const char* path, const void* data, size_t n) {
  FILE* f = std::fopen(path, "wb");
  if (!f) { std::perror(path); std::exit(2); }
  if (n) std::fwrite(data, 1, n, f);
  std::fclose(f);
}

// Buffers: |num_inputs| files "<dir>/<case>.in<k>.bin", then output buffers
// of |out_bytes| each, written back to "<dir>/<case>.out<k>.bin".
using Kernel = int32_t (*)(const aotc_rt::KernelContext&);
static void run_case(const char* dir, const char* name, Kernel kernel, int num_inputs,
                     int num_outputs, const size_t* out_bytes, const int64_t* sym) {
  char path[4096];
  std::vector<std::vector<unsigned char>> storage;
  for (int k = 0; k < num_inputs; ++k) {
    std::snprintf(path, sizeof(path), "%s/%s.in%d.bin", dir, name, k);
    storage.push_back(read_file(path));
  }
  for (int k = 0; k < num_outputs; ++k) storage.emplace_back(out_bytes[k] + 1, 0xA5);
  std::vector<void*> buf;
  for (auto& s : storage) buf.push_back(s.data());
  aotc_host_t host;
  std::memset(&host, 0, sizeof(host));
  host.struct_size = sizeof(host);
  host.parallel_for = inline_parallel_for;
  aotc_abi_status_t status;
  std::memset(&status, 0, sizeof(status));
  aotc_rt::KernelContext ctx{&host, nullptr, buf.data(), sym, &status};
  const int32_t rc = kernel(ctx);
  for (int k = 0; k < num_outputs; ++k) {
    std::snprintf(path, sizeof(path), "%s/%s.out%d.bin", dir, name, k);
    write_file(path, storage[num_inputs + k].data(), out_bytes[k]);
  }
  std::snprintf(path, sizeof(path), "%s/%s.rc", dir, name);
  FILE* f = std::fopen(path, "w");
  std::fprintf(f, "%d\n%s", rc, rc ? status.message : "");
  std::fclose(f);
}
"""


def _raw(t: torch.Tensor) -> np.ndarray:
    t = t.contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.numpy()


def _from_raw(data: bytes, like: torch.Tensor) -> torch.Tensor:
    if like.dtype in (torch.bfloat16, torch.float16):
        arr = np.frombuffer(data, dtype=np.int16).copy()
        return torch.from_numpy(arr).view(like.dtype).reshape(like.shape)
    np_dtype = torch.empty((), dtype=like.dtype).numpy().dtype
    return torch.from_numpy(np.frombuffer(data, dtype=np_dtype).copy()).reshape(like.shape)


def _program_source(directory: Path) -> str:
    parts = [_HOST]
    calls = []
    for c in CASES:
        ids = {name: k for k, name in enumerate([*c.inputs, *c.outputs])}
        for node in c.kernel.nodes:  # outputs not compared still need slots
            if node.name not in ids and node.name not in c.kernel.local:
                ids[node.name] = len(ids)
        dtypes = {name: t.dtype for name, t in c.inputs.items()}
        parts.append(generate_loop_kernel(c.kernel, ids, size_expr, f"{c.kernel.name}:0", dtypes))
        outputs = [n for n in ids if n not in c.inputs]
        nbytes = [_output_bytes(c, name) for name in outputs]
        sym = ", ".join(str(v) for v in c.syms) or "0"
        calls.append(
            f"  {{ const size_t out_bytes[] = {{{', '.join(map(str, nbytes)) or '0'}}};\n"
            f"    const int64_t sym[] = {{{sym}}};\n"
            f'    run_case(dir, "{c.name}", {c.kernel.name}, {len(c.inputs)}, {len(outputs)}, '
            "out_bytes, sym); }"
        )
        for k, t in enumerate(c.inputs.values()):
            _raw(t).tofile(directory / f"{c.name}.in{k}.bin")
    parts.append("int main(int argc, char** argv) {\n  const char* dir = argv[1];\n  (void)argc;")
    parts.extend(calls)
    parts.append("  return 0;\n}\n")
    return "\n".join(parts)


def _output_bytes(c: Case, name: str) -> int:
    if name in c.outputs:
        t = c.outputs[name]
        return t.numel() * t.element_size()
    node = next(n for n in c.kernel.nodes if n.name == name)
    numel = math.prod(int(s) for s in node.layout.sizes)
    return numel * torch.empty((), dtype=node.dtype).element_size()


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    directory = tmp_path_factory.mktemp("cpp_codegen")
    source = directory / "kernels_test.cc"
    source.write_text(_program_source(directory))
    binary = directory / "kernels_test"
    includes = [f"-I{p}" for p in INCLUDES]
    flags = ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror"]
    proc = subprocess.run(
        ["g++", *flags, *includes, str(source), "-o", str(binary)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"g++ failed on {source}:\n{proc.stderr[-6000:]}"
    run = subprocess.run([str(binary), str(directory)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"test program failed ({run.returncode}):\n{run.stderr}"
    return directory


def test_sanitizers_clean(program: Path, tmp_path: Path) -> None:
    """The same program under ASan + UBSan: no read outside a buffer (masked
    loads, bounds-checked indirect indices), no signed overflow, no SIGFPE."""
    binary = tmp_path / "kernels_test_asan"
    flags = ["-O1", "-g", "-std=c++17", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    includes = [f"-I{p}" for p in INCLUDES]
    source = program / "kernels_test.cc"
    proc = subprocess.run(
        ["g++", *flags, *includes, str(source), "-o", str(binary)], capture_output=True, text=True
    )
    if proc.returncode != 0 and "asan" in proc.stderr.lower():
        pytest.skip(f"no sanitizer runtime: {proc.stderr[-500:]}")
    assert proc.returncode == 0, proc.stderr[-6000:]
    for path in program.glob("*.in*.bin"):
        shutil.copy(path, tmp_path / path.name)
    run = subprocess.run([str(binary), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "runtime error" not in run.stderr, run.stderr[-6000:]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_compiled_kernel(program: Path, c: Case) -> None:
    rc_text = (program / f"{c.name}.rc").read_text()
    rc, _, message = rc_text.partition("\n")
    assert int(rc) == c.expect_rc, message
    for part in c.expect_message:
        assert part in message
    if c.expect_rc:
        return
    for k, (name, want) in enumerate(c.outputs.items()):
        got = _from_raw((program / f"{c.name}.out{k}.bin").read_bytes(), want)
        if want.dtype in (torch.bfloat16, torch.float16):
            # Conversions are exact: compare bit patterns (any NaN matches any NaN).
            nan = want.isnan()
            assert torch.equal(got.isnan(), nan), name
            assert torch.equal(got[~nan].view(torch.int16), want[~nan].view(torch.int16)), name
        elif want.dtype.is_floating_point:
            torch.testing.assert_close(
                got, want, equal_nan=True, atol=c.atol, rtol=c.rtol, msg=name
            )
        else:
            assert torch.equal(got, want), f"{name}: got {got}, want {want}"
