"""The wrapper and the build, end to end without the other compiler stages:
hand-built Schedules with hand-written kernel C++ go through
aot.codegen.wrapper -> aot.build (CMake + Ninja) -> aot.export.write_package ->
aot.runtime.load, and must compute the right numbers, enforce plan()'s checks
with the ABI's messages, and export only the five ABI symbols.

Fast unit tests (no compiler) of the size printer, the buffer table and the
source layout come first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sympy
import torch

from aot.build import BuildError, build_library, source_tree, write_source_tree
from aot.build.builder import first_errors
from aot.codegen.wrapper import (
    assign_buffer_ids,
    debug_handles,
    generate_sources,
    generate_wrapper,
    make_size_expr,
)
from aot.codegen.wrapper.cpp_wrapper import _split, plan_relations
from aot.ir.graph import Constant, LoweredGraph, SymbolInfo
from aot.ir.nodes import Buffer, BufferKind, ComputedBuffer, Layout, Pointwise
from aot.ir.symbols import FloorDiv, ModularIndexing, size_symbol
from aot.options import ExportOptions
from aot.scheduler.schedule import LoopKernel, Placement, Schedule, Storage

S0 = size_symbol("s0")
HEADERS = ("aotc_cpu.h",)  # the hand-written kernels need only the calling convention


# --------------------------------------------------------------------------- #
# Hand-built graphs                                                            #
# --------------------------------------------------------------------------- #


def _input(name: str, sizes: list) -> Buffer:
    return Buffer(name, torch.float32, Layout.contiguous(sizes), BufferKind.INPUT)


def _computed(name: str, sizes: list, fn) -> ComputedBuffer:
    layout = Layout.contiguous(sizes)
    data = Pointwise(list(layout.sizes), torch.float32, fn)
    return ComputedBuffer(name, torch.float32, layout, BufferKind.COMPUTED, (name,), data)


def affine_schedule() -> tuple[Schedule, list[str]]:
    """y = x * 2 + 1, x float32[4, 8]: one kernel writing the output."""
    x = _input("x", [4, 8])

    def body(ops, index):
        v = x.make_loader()(ops, index)
        return ops.add(
            ops.mul(v, ops.constant(2.0, torch.float32)), ops.constant(1.0, torch.float32)
        )

    y = _computed("buf0", [4, 8], body)
    graph = LoweredGraph("affine", [x], ["x"], [], [y], [y], ["y"])
    kernel = LoopKernel("kernel0", [y], [sympy.Integer(32)])
    placements = {"x": Placement(Storage.INPUT, 0), "buf0": Placement(Storage.OUTPUT, 0)}
    source = """
static int32_t kernel0(const aotc_rt::KernelContext& ctx) {
  const float* in0 = static_cast<const float*>(ctx.buf[0]);
  float* out0 = static_cast<float*>(ctx.buf[1]);
  aotc_rt::parallel_for(ctx, 0, 32, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out0[i] = in0[i] * 2.0f + 1.0f;
  });
  return AOTC_ABI_OK;
}
"""
    return Schedule(graph, [kernel], placements, sympy.Integer(0)), [source]


def dynamic_schedule() -> tuple[Schedule, list[str]]:
    """x float32[s0, 8] (s0 in [2, 64]), y float32[s0, 8], constant w [8]:
    t = 2*x in the workspace (at offset 64), out = t + y + w, float32[s0, 8]."""
    x, y = _input("x", [S0, 8]), _input("y", [S0, 8])
    w = Buffer("w", torch.float32, Layout.contiguous([8]), BufferKind.CONSTANT)
    t = _computed("buf0", [S0, 8], lambda ops, i: ops.mul(x.make_loader()(ops, i), 2.0))
    out = _computed("buf1", [S0, 8], lambda ops, i: ops.add(t.make_loader()(ops, i), 1.0))
    weights = torch.arange(8, dtype=torch.float32) / 8
    graph = LoweredGraph(
        "dyn",
        [x, y],
        ["x", "y"],
        [Constant("w", w, weights)],
        [t, out],
        [out],
        ["out"],
        symbols=[SymbolInfo(S0, 0, 0, 2, 64)],
    )
    kernels = [
        LoopKernel("kernel0", [t], [S0 * 8]),
        LoopKernel("kernel1", [out], [S0, sympy.Integer(8)]),
    ]
    placements = {
        "x": Placement(Storage.INPUT, 0),
        "y": Placement(Storage.INPUT, 1),
        "w": Placement(Storage.CONSTANT, 0),
        "buf1": Placement(Storage.OUTPUT, 0),
        "buf0": Placement(Storage.WORKSPACE, 0, sympy.Integer(64)),
    }
    ids = assign_buffer_ids(Schedule(graph, kernels, placements, sympy.Integer(0)))
    size = make_size_expr([S0])
    k0 = f"""
static int32_t kernel0(const aotc_rt::KernelContext& ctx) {{
  const float* x = static_cast<const float*>(ctx.buf[{ids["x"]}]);
  float* t = static_cast<float*>(ctx.buf[{ids["buf0"]}]);
  aotc_rt::parallel_for(ctx, 0, {size(S0 * 8)}, 16, [&](int64_t begin, int64_t end) {{
    for (int64_t i = begin; i < end; ++i) t[i] = 2.0f * x[i];
  }});
  return AOTC_ABI_OK;
}}
"""
    k1 = f"""
static int32_t kernel1(const aotc_rt::KernelContext& ctx) {{
  const float* t = static_cast<const float*>(ctx.buf[{ids["buf0"]}]);
  const float* y = static_cast<const float*>(ctx.buf[{ids["y"]}]);
  const float* w = static_cast<const float*>(ctx.buf[{ids["w"]}]);
  float* out = static_cast<float*>(ctx.buf[{ids["buf1"]}]);
  aotc_rt::parallel_for(ctx, 0, {size(S0)}, 1, [&](int64_t begin, int64_t end) {{
    for (int64_t r = begin; r < end; ++r)
      for (int64_t c = 0; c < 8; ++c) out[r * 8 + c] = t[r * 8 + c] + y[r * 8 + c] + w[c];
  }});
  return AOTC_ABI_OK;
}}
"""
    workspace = 64 + S0 * 32
    return Schedule(graph, kernels, placements, workspace), [k0, k1]


def mutating_schedule() -> tuple[Schedule, list[str]]:
    """x float32[4] mutated in place (x += 1), state counter [4] (counter += x),
    output out = 2 * counter; new values live in the workspace."""
    x = _input("x", [4])
    counter = Buffer("counter", torch.float32, Layout.contiguous([4]), BufferKind.STATE)
    new_x = _computed("buf0", [4], lambda ops, i: ops.add(x.make_loader()(ops, i), 1.0))
    new_c = _computed("buf1", [4], lambda ops, i: ops.add(counter.make_loader()(ops, i), 1.0))
    out = _computed("buf2", [4], lambda ops, i: ops.mul(new_c.make_loader()(ops, i), 2.0))
    graph = LoweredGraph(
        "mut",
        [x],
        ["x"],
        [Constant("counter", counter, torch.zeros(4))],
        [new_x, new_c, out],
        [out],
        ["out"],
        input_mutations=[(0, new_x)],
        state_mutations=[("counter", new_c)],
    )
    kernels = [LoopKernel("kernel0", [new_x, new_c, out], [sympy.Integer(4)])]
    placements = {
        "x": Placement(Storage.INPUT, 0),
        "counter": Placement(Storage.CONSTANT, 0),
        "buf2": Placement(Storage.OUTPUT, 0),
        "buf0": Placement(Storage.WORKSPACE, 0, sympy.Integer(0)),
        "buf1": Placement(Storage.WORKSPACE, 0, sympy.Integer(64)),
    }
    schedule = Schedule(graph, kernels, placements, sympy.Integer(128))
    ids = assign_buffer_ids(schedule)
    source = f"""
static int32_t kernel0(const aotc_rt::KernelContext& ctx) {{
  const float* x = static_cast<const float*>(ctx.buf[{ids["x"]}]);
  const float* c = static_cast<const float*>(ctx.buf[{ids["counter"]}]);
  float* nx = static_cast<float*>(ctx.buf[{ids["buf0"]}]);
  float* nc = static_cast<float*>(ctx.buf[{ids["buf1"]}]);
  float* out = static_cast<float*>(ctx.buf[{ids["buf2"]}]);
  for (int i = 0; i < 4; ++i) {{
    nx[i] = x[i] + 1.0f;
    nc[i] = c[i] + nx[i];
    out[i] = 2.0f * nc[i];
  }}
  return AOTC_ABI_OK;
}}
"""
    return schedule, [source]


# --------------------------------------------------------------------------- #
# No compiler needed                                                           #
# --------------------------------------------------------------------------- #


def test_size_printer():
    s1 = size_symbol("s1")
    p = make_size_expr([S0, s1])
    assert p(S0 * 8) == "8 * ctx.sym[0]"
    assert p(2 * S0 + 3) == "2 * ctx.sym[0] + 3"
    assert p(S0 - 1) == "ctx.sym[0] - 1"
    assert p(FloorDiv(S0 * s1 + 3, s1 + 1)) == "(ctx.sym[0] * ctx.sym[1] + 3) / (ctx.sym[1] + 1)"
    assert p(ModularIndexing(S0, 2, s1)) == "ctx.sym[0] / 2 % ctx.sym[1]"
    assert p(4 * FloorDiv(S0, 2) * s1) == "4 * ctx.sym[1] * (ctx.sym[0] / 2)"
    # A workspace offset: the division keeps its parentheses after a coefficient
    # (64 * x / 64 would be x, an unaligned offset; found on a GPU).
    assert p(64 * FloorDiv(4 * S0 + 63, 64)) == "64 * ((4 * ctx.sym[0] + 63) / 64)"
    for value in (1, 2, 37):  # the printed C++ evaluates like the expression
        expr = 64 * FloorDiv(4 * S0 * s1 + 63, 64) + 3 * ModularIndexing(S0, 1, 5)
        text = p(expr).replace("ctx.sym[0]", str(value)).replace("ctx.sym[1]", "3")
        assert eval(text.replace("/", "//")) == expr.subs({S0: value, s1: 3})
    assert p(2**40 * S0) == "1099511627776LL * ctx.sym[0]"
    assert p(sympy.Integer(7)) == "7"
    assert p(sympy.Symbol("i0", integer=True)) == "i0"  # loop variables print as themselves
    strict = make_size_expr([S0], strict=True)
    with pytest.raises(ValueError, match="s1"):
        strict(S0 + s1)


def test_buffer_ids_inputs_constants_outputs_then_workspace():
    schedule, _ = dynamic_schedule()
    assert assign_buffer_ids(schedule) == {"x": 0, "y": 1, "w": 2, "buf1": 3, "buf0": 4}
    assert debug_handles(schedule) == ["kernel0:0", "kernel1:0"]
    assert plan_relations(schedule.graph) == [(1, 0, S0)]


def test_sources_layout_and_debug_handles():
    schedule, kernels = dynamic_schedule()
    files = generate_sources(schedule, kernels, debug_handles(schedule), isa="x86-64-v3")
    assert list(files) == ["model.cc", "kernels_0.cc"]
    model = files["model.cc"]
    assert "// kernel0:0\n    rc = aotc_model::run_kernel0(ctx);" in model
    assert '"cpu:x86-64-v3"' in model
    assert "int32_t run_kernel1(const aotc_rt::KernelContext& ctx)" in files["kernels_0.cc"]
    single = generate_wrapper(schedule, kernels, debug_handles(schedule))
    assert "static int32_t kernel0" in single and "// kernel1:0\n    rc = kernel1(ctx);" in single
    tree = source_tree(files, "x86-64-v3")
    assert {"CMakeLists.txt", "model_library.map", "include/aotc/model_abi.h"} <= set(tree)
    assert "include/aotc_cpu.h" in tree
    repo = Path(__file__).resolve().parent.parent
    assert tree["model_library.map"] == (repo / "cmake" / "model_library.map").read_bytes()
    options = [line for line in tree["CMakeLists.txt"].decode().splitlines() if "-O3" in line]
    assert options and "fast-math" not in options[0] and "math-errno" not in options[0]


def test_split_is_balanced_and_ordered():
    assert _split([]) == []
    groups = _split(["x" * 20_000] * 6)
    assert [i for g in groups for i in g] == list(range(6))
    assert len(groups) == 5 and max(len(g) for g in groups) == 2


def test_first_errors_starts_at_the_error():
    log = "[1/3] Building CXX\nFAILED: x.o\nsrc/k.cc:3:1: error: boom\n  3 | x\nmore\n"
    assert first_errors(log).startswith("src/k.cc:3:1: error: boom")


# --------------------------------------------------------------------------- #
# Built and run through the runtime                                            #
# --------------------------------------------------------------------------- #


def _build(schedule: Schedule, kernels: list[str], tmp_path: Path) -> tuple[Path, dict]:
    files = generate_sources(
        schedule, kernels, debug_handles(schedule), isa="x86-64-v2", headers=HEADERS
    )
    tree = source_tree(files, "x86-64-v2")
    src = write_source_tree(tree, tmp_path / "src")
    return build_library(src, tmp_path / "build", jobs=2), tree


def _package(schedule, library, tree, tmp_path, samples=None) -> Path:
    from aot.export import write_package

    output = tmp_path / f"{schedule.graph.name}.pt2"
    inputs, outputs = samples or ([], [])
    write_package(
        output,
        schedule.graph,
        library.read_bytes(),
        tree,
        ExportOptions(isa="x86-64-v2"),
        sample_inputs=inputs,
        sample_outputs=outputs,
    )
    return output


def _exported_symbols(library: Path) -> list[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    ).stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


def test_static_model_builds_packages_and_runs(native_build, tmp_path):
    from aot import runtime

    schedule, kernels = affine_schedule()
    library, tree = _build(schedule, kernels, tmp_path)
    assert _exported_symbols(library) == sorted(
        [
            "aotc_model_create",
            "aotc_model_describe",
            "aotc_model_destroy",
            "aotc_model_plan",
            "aotc_model_run",
        ]
    )
    assert str(tmp_path).encode() not in library.read_bytes()  # -ffile-prefix-map
    needed = subprocess.run(
        ["readelf", "-d", str(library)], capture_output=True, text=True, check=True
    ).stdout
    assert "libstdc++" not in needed and "libgcc_s" not in needed  # linked statically
    x = torch.randn(4, 8)
    package = _package(schedule, library, tree, tmp_path, ([x], [x * 2 + 1]))
    with runtime.load(package) as model:
        (y,) = model(x)
        torch.testing.assert_close(y, x * 2 + 1)
        x2 = torch.randn(4, 8)
        torch.testing.assert_close(model(x2)[0], x2 * 2 + 1)
        with pytest.raises(runtime.AotcError, match=r"expected float32\[4, 8\]"):
            model(torch.randn(4, 9))


def test_dynamic_model_plan_checks_and_workspace(native_build, tmp_path):
    from aot import runtime

    schedule, kernels = dynamic_schedule()
    library, tree = _build(schedule, kernels, tmp_path)
    package = _package(schedule, library, tree, tmp_path)
    w = torch.arange(8, dtype=torch.float32) / 8
    with runtime.load(package) as model:
        assert [str(s) for s in model.input_specs] == ["x: float32[s0, 8]", "y: float32[s0, 8]"]
        assert model.input_specs[0].ranges[0] == (2, 64)
        for rows in (2, 3, 17, 64):
            x, y = torch.randn(rows, 8), torch.randn(rows, 8)
            (out,) = model(x, y)
            torch.testing.assert_close(out, 2 * x + y + w)
        with pytest.raises(
            runtime.AotcError, match=r'input 0 "x" dim 0 \(s0\): 65 is outside \[2, 64\]'
        ):
            model(torch.randn(65, 8), torch.randn(65, 8))
        with pytest.raises(runtime.AotcError, match=r'input 1 "y" dim 0: expected s0 = 3, got 4'):
            model(torch.randn(3, 8), torch.randn(4, 8))
        assert model.plan([(5, 8), (5, 8)]) == [(5, 8)]


def test_mutated_input_and_state_are_written_back(native_build, tmp_path):
    from aot import runtime

    schedule, kernels = mutating_schedule()
    library, tree = _build(schedule, kernels, tmp_path)
    package = _package(schedule, library, tree, tmp_path)
    with runtime.load(package) as model:
        assert model.input_specs[0].mutated
        x = torch.tensor([1.0, 2.0, 3.0, 4.0])
        (out,) = model(x)
        torch.testing.assert_close(x, torch.tensor([2.0, 3.0, 4.0, 5.0]))
        torch.testing.assert_close(out, 2 * x)
        (out,) = model(x)  # counter = (x+1) + (x+2) of the first x
        torch.testing.assert_close(x, torch.tensor([3.0, 4.0, 5.0, 6.0]))
        torch.testing.assert_close(out, 2 * torch.tensor([5.0, 7.0, 9.0, 11.0]))


def test_package_sources_rebuild_the_same_library(tmp_path):
    import packager

    schedule, kernels = dynamic_schedule()
    library, tree = _build(schedule, kernels, tmp_path / "first")
    package = _package(schedule, library, tree, tmp_path)
    pkg = packager.read_package(package)
    folder = pkg.model("dyn").layout.model_dir("dyn") + "src/"
    src = tmp_path / "extracted"
    for entry in pkg.model("dyn").manifest["entries"]:
        if entry.startswith(folder):
            path = src / entry[len(folder) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pkg.read(entry))
    assert sorted(p.name for p in src.iterdir()) == sorted(
        ["CMakeLists.txt", "include", "kernels_0.cc", "model.cc", "model_library.map"]
    )
    rebuilt = build_library(src, tmp_path / "rebuild", jobs=2)
    # Reproducible: no build path leaks in (-ffile-prefix-map), same bytes.
    assert rebuilt.read_bytes() == library.read_bytes()


def test_compile_error_raises_build_error(tmp_path):
    schedule, _ = affine_schedule()
    broken = ["static int32_t kernel0(const aotc_rt::KernelContext& ctx) { return nope; }"]
    with pytest.raises(BuildError, match="nope") as info:
        _build(schedule, broken, tmp_path)
    assert "error" in str(info.value)
