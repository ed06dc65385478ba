"""Fusion and memory traffic, held to the standard of PyTorch's test_perf.

Each case compiles a small model into a real package and checks three things
against numbers worked out by hand in the case (never read back from aotc):
- the kernels: counted in the package's generated C++ (src/kernels_*.cc),
  and the copy-backs of mutated inputs in src/model.cc;
- the bytes every kernel moves, summed from the manifest's ``costs``
  (test_perf's ``count_numel`` rule, [Note: bytes counting]: each buffer a
  kernel reads counts its full size once, each buffer it writes once;
  fused intermediates count nothing; a copy-back counts its read and write);
- the FLOPs, where the case states them ([Note: FLOP counting]);
then runs the package through the C++ runtime on fresh random inputs and
compares outputs and mutated inputs with eager.

Sizes: N = 1024 elements for vectors, R x C = 32 x 64 for matrices, so a
float32 vector or matrix is N4 = 4096 or M4 = 8192 bytes.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aot.testing import AOTCRunnerUtil, assert_close_to_eager
from packager.reader import Package

N, R, C = 1024, 32, 64
N4 = N * 4  # one float32 vector
M4 = R * C * 4  # one float32 R x C matrix
ROW4, COL4 = R * 4, C * 4  # one float32 value per row / per column


def randn(*sizes: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(*sizes)


def randint(high: int, *sizes: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randint(0, high, sizes)


class Fn(nn.Module):
    """A model whose forward is |fn|."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> Any:
        return self.fn(*args)


class Counter(nn.Module):
    """State mutated in place: total += x, returned doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros(N))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total.add_(x)
        return self.total * 2


class ConvBnRelu(nn.Module):
    """conv -> batch norm (eval, with non-trivial statistics) -> relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


@dataclass(frozen=True)
class Case:
    name: str
    model: Callable[[], nn.Module] | Callable[..., Any]  # a module factory or a function
    inputs: tuple[Callable[[], torch.Tensor], ...]
    kernels: int
    bytes: int
    flops: int | None = None
    copies: int = 0  # mutated inputs or state copied back after the last kernel

    def module(self) -> nn.Module:
        made = self.model() if isinstance(self.model, type) else Fn(self.model)
        return made.eval()

    def draw(self) -> tuple[torch.Tensor, ...]:
        return tuple(make() for make in self.inputs)


def _relu_and_column_sums_of_product(
    x: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    y = x @ w
    return torch.relu(y), y.sum(0)


def _add_one_(x: torch.Tensor) -> None:
    x.add_(1)


def _add_flipped_(x: torch.Tensor) -> None:
    x.add_(x.flip(0))


def _scatter_(x: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> None:
    x.scatter_(0, index, src)


def _index_put_many_(x: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    x.index_put_((index,), values, accumulate=True)


def _set_column_(x: torch.Tensor, values: torch.Tensor) -> None:
    x[:, 3] = values


def _scale_then_read_(x: torch.Tensor) -> torch.Tensor:
    x.mul_(2)
    return x + 1


def _unique_index(high: int, count: int) -> Callable[[], torch.Tensor]:
    # scatter_ without duplicates: eager leaves the winner unspecified.
    return lambda: torch.randperm(high)[:count]


CASES = [
    # -- FusionTests: pointwise chains ------------------------------------------
    # x.cos().sin(): one kernel reads x and writes the result.
    Case("pointwise_cos_sin", lambda x: x.cos().sin(), (randn(N),), 1, 2 * N4, 2 * N),
    # Nine float ops (mul sin add cos exp abs sqrt mul sub) over two inputs.
    Case(
        "pointwise_long_chain",
        lambda x, y: ((x * y).sin() + x).cos().exp().abs().sqrt() * y - 1,
        (randn(N), randn(N)),
        1,
        3 * N4,
        9 * N,
    ),
    # A [C] bias broadcast over rows is read once: its C floats.
    Case("pointwise_broadcast", lambda x, b: x + b, (randn(R, C), randn(C)), 1, 2 * M4 + COL4),
    # a is an output and feeds a.cos() in the same kernel: read x, write a and
    # b. b's body inlines sin(x) rather than reading a back: 3 FLOPs an element.
    Case("pointwise_two_outputs", lambda x: (a := x.sin(), a.cos()), (randn(N),), 1, 3 * N4, 3 * N),
    # Comparisons and selects are no FLOPs.
    Case(
        "pointwise_where", lambda x, y: torch.where(x > 0, x, y), (randn(N), randn(N)), 1, 3 * N4, 0
    ),
    # int64: 8 bytes an element, integer arithmetic is no FLOPs.
    Case("pointwise_int64", lambda i: i * 3 + 1, (randint(100, N),), 1, 2 * N * 8, 0),
    # bfloat16 in and out (2 bytes an element), computed in float32.
    Case(
        "pointwise_bfloat16",
        lambda x: (x * 2).sin(),
        (lambda: torch.randn(N).bfloat16(),),
        1,
        2 * N * 2,
        2 * N,
    ),
    # -- pointwise into reductions ------------------------------------------------
    Case("reduce_cos_sum", lambda x: x.cos().sum(), (randn(N),), 1, N4 + 4, 2 * N),
    Case(
        "reduce_row_sum_of_product",
        lambda x, y: (x * y).sum(1),
        (randn(R, C), randn(R, C)),
        1,
        2 * M4 + ROW4,
        2 * R * C,
    ),
    Case("reduce_column_sum", lambda x: x.sum(0), (randn(R, C),), 1, M4 + COL4, R * C),
    # mean = sum, then one division, in the same kernel.
    Case("reduce_mean_all", lambda x: x.mean(), (randn(R, C),), 1, M4 + 4, R * C + 1),
    # max(1) writes the values (float32) and the indices (int64).
    Case("reduce_max_with_indices", lambda x: x.max(1), (randn(R, C),), 1, M4 + ROW4 + R * 8),
    # -- reduction epilogues ----------------------------------------------------------
    Case(
        "epilogue_sum_then_sin", lambda x: x.sum(1).sin(), (randn(R, C),), 1, M4 + ROW4, R * C + R
    ),
    Case(
        "epilogue_center_rows",
        lambda x: x - x.mean(1, keepdim=True),
        (randn(R, C),),
        1,
        2 * M4,
    ),
    Case(
        "epilogue_normalize_rows",
        lambda x: x / x.norm(dim=1, keepdim=True),
        (randn(R, C),),
        1,
        2 * M4,
    ),
    # Welford: mean and variance in one pass.
    Case("epilogue_var_mean", lambda x: torch.var_mean(x, 1), (randn(R, C),), 1, M4 + 2 * ROW4),
    # A reduction of a reduction: the R row sums round-trip through memory.
    Case(
        "epilogue_two_level_sum",
        lambda x: x.sum(1).sum(0),
        (randn(R, C),),
        2,
        (M4 + ROW4) + (ROW4 + 4),
        R * C + R,
    ),
    # -- softmax: at most two kernels --------------------------------------------------
    # Inner dim: max, sum and the normalised values in one pass over each row.
    # FLOPs per element: max, sub, exp, sum, then sub, exp, div = 7.
    Case("softmax_inner", lambda x: x.softmax(-1), (randn(R, C),), 1, 2 * M4, 7 * R * C),
    # Outer dim: kernel 1 reads x, writes each column's max and sum; kernel 2
    # reads x and those, writes the result.
    Case(
        "softmax_outer",
        lambda x: x.softmax(0),
        (randn(R, C),),
        2,
        (M4 + 2 * COL4) + (M4 + 2 * COL4 + M4),
    ),
    Case("softmax_log_inner", lambda x: x.log_softmax(-1), (randn(R, C),), 1, 2 * M4),
    Case("softmax_twice", lambda x: x.softmax(-1).softmax(-1), (randn(R, C),), 1, 2 * M4),
    # Scaled scores plus an additive mask: two inputs read, one output.
    Case(
        "softmax_scaled_masked",
        lambda x, m: (x * 0.125 + m).softmax(-1),
        (randn(R, C), randn(R, C)),
        1,
        3 * M4,
    ),
    # -- layer norm and friends ---------------------------------------------------------
    Case(
        "layer_norm_affine",
        lambda x, w, b: F.layer_norm(x, (C,), w, b),
        (randn(R, C), randn(C), randn(C)),
        1,
        2 * M4 + 2 * COL4,
    ),
    Case(
        "rms_norm",
        lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w,
        (randn(R, C), randn(C)),
        1,
        2 * M4 + COL4,
    ),
    Case(
        "layer_norm_twice",
        lambda x: F.layer_norm(F.layer_norm(x, (C,)), (C,)),
        (randn(R, C),),
        1,
        2 * M4,
    ),
    # Eval batch norm over [8, 16, 4, 4]: x in, y out, four [16] statistics.
    Case(
        "batch_norm_eval",
        lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, False),
        (randn(8, 16, 4, 4), randn(16), lambda: torch.rand(16) + 0.5, randn(16), randn(16)),
        1,
        2 * 8 * 16 * 4 * 4 * 4 + 4 * 16 * 4,
    ),
    # -- horizontal fusion: independent work over the same input --------------------------
    Case(
        "horizontal_sum_and_max",
        lambda x: (x.sum(1), x.amax(1)),
        (randn(R, C),),
        1,
        M4 + 2 * ROW4,
        2 * R * C,
    ),
    Case(
        "horizontal_sum_and_pointwise",
        lambda x: (x.sum(1), x.sin()),
        (randn(R, C),),
        1,
        M4 + ROW4 + M4,
    ),
    Case("horizontal_two_pointwise", lambda x: (x.sin(), x.cos()), (randn(N),), 1, 3 * N4, 2 * N),
    Case(
        "horizontal_sum_broadcast_back",
        lambda x: x.sum(1, keepdim=True) + x,
        (randn(R, C),),
        1,
        2 * M4,
    ),
    # -- cat without materialising its inputs --------------------------------------------
    # (No FLOPs stated: each output element's body holds both masked pieces,
    # and masked bodies count as if evaluated, an upper bound.)
    Case(
        "cat_pointwise",
        lambda x, y: torch.cat([x.sin(), y.cos()]),
        (randn(N), randn(N)),
        1,
        2 * N4 + 2 * N4,
    ),
    Case(
        "cat_ten_pointwise",
        lambda *xs: torch.cat([x.sin() for x in xs]),
        tuple(randn(N) for _ in range(10)),
        1,
        10 * N4 + 10 * N4,
    ),
    Case(
        "cat_pointwise_dim1",
        lambda x, y: torch.cat([x.sin(), y.cos()], 1),
        (randn(R, C), randn(R, C)),
        1,
        4 * M4,
    ),
    Case(
        "cat_then_sum",
        lambda x, y: torch.cat([x.sin(), y.cos()]).sum(),
        (randn(N), randn(N)),
        1,
        2 * N4 + 4,
    ),
    Case("cat_inputs", lambda x, y: torch.cat([x, y]), (randn(N), randn(N)), 1, 4 * N4),
    # -- TilingTests: transposed operands read in place --------------------------------------
    Case("tiling_add_transpose", lambda x: x + x.t(), (randn(C, C),), 1, 2 * C * C * 4),
    Case("tiling_transpose_copy", lambda x: x.t().contiguous(), (randn(R, C),), 1, 2 * M4),
    Case(
        "tiling_permute_add",
        lambda x, y: x.permute(2, 0, 1) + y,
        (randn(8, 16, 4), randn(4, 8, 16)),
        1,
        3 * 512 * 4,
    ),
    Case(
        "tiling_three_operands",
        lambda x, y, z: x + y.t() + z,
        (randn(R, R), randn(R, R), randn(R, R)),
        1,
        4 * R * R * 4,
    ),
    Case("tiling_transposed_sum", lambda x: x.t().sum(1), (randn(R, C),), 1, M4 + COL4),
    # A GEMM reads its transposed weight through strides: no copy kernel.
    Case(
        "tiling_matmul_transposed_weight",
        lambda x, w: x @ w.t(),
        (randn(8, 32), randn(16, 32)),
        1,
        (8 * 32 + 16 * 32) * 4 + 8 * 16 * 4,
        2 * 8 * 16 * 32,
    ),
    # -- NoopTests: views, clones and conversions cost nothing ------------------------------
    Case("noop_view_then_sin", lambda x: x.view(4, -1).sin(), (randn(R, C),), 1, 2 * M4),
    Case("noop_clones", lambda x: x.clone().clone().clone(), (randn(N),), 1, 2 * N4, 0),
    Case("noop_same_dtype", lambda x: x.to(torch.float32) + 1, (randn(N),), 1, 2 * N4, N),
    # float64 only in registers: no float64 buffer is written.
    Case(
        "noop_dtype_round_trip",
        lambda x: x.to(torch.float64).to(torch.float32).sin(),
        (randn(N),),
        1,
        2 * N4,
    ),
    Case(
        "noop_permute_reshape",
        lambda x: x.permute(1, 0).reshape(-1).sin(),
        (randn(R, C),),
        1,
        2 * M4,
    ),
    # Scattering y over all of x reads y alone.
    Case(
        "noop_slice_scatter_whole",
        lambda x, y: torch.slice_scatter(x, y, 0, 0, R),
        (randn(R, C), randn(R, C)),
        1,
        2 * M4,
    ),
    Case(
        "noop_expand",
        lambda x, y: x[:, None].expand(R, C) * y,
        (randn(R), randn(R, C)),
        1,
        ROW4 + 2 * M4,
    ),
    # -- InplacingTests: mutations write the input's own memory ---------------------------------
    Case("inplace_add", _add_one_, (randn(N),), 1, 2 * N4, N),
    # x *= 2, then x + 1 reads the new x: one pass reads x and writes x and
    # the output (the new value is realized where it is computed, so the
    # output reads it instead of recomputing it from the old x).
    Case("inplace_then_read", _scale_then_read_, (randn(N),), 1, 3 * N4, 2 * N),
    # State: total += x reads both and writes total in place; 2 * total is the output.
    Case("inplace_state", Counter, (randn(N),), 1, 2 * N4 + 2 * N4, 2 * N),
    # A column write reads the column values and x, and rewrites x in place.
    Case("inplace_set_column", _set_column_, (randn(R, C), randn(R)), 1, M4 + ROW4 + M4),
    # scatter_ in place touches the 16 indexed elements only: reads the index
    # (int64) and the values, writes 16 floats.
    Case(
        "inplace_scatter",
        _scatter_,
        (randn(N), _unique_index(N, 16), randn(16)),
        1,
        16 * 8 + 16 * 4 + 16 * 4,
    ),
    # index_put_ with accumulate and more indices than a loop kernel takes:
    # the extern reads the index, the values and the touched elements, and
    # writes those back.
    Case(
        "inplace_index_put_accumulate",
        _index_put_many_,
        (randn(N), randint(N, 64), randn(64)),
        1,
        64 * 8 + 64 * 4 + 64 * 4 + 64 * 4,
    ),
    # x.add_(x.flip(0)) cannot overwrite x while reading it reversed: the new
    # value goes to the workspace and is copied back (read and written once more).
    Case("inplace_blocked_by_flip", _add_flipped_, (randn(N),), 1, 2 * N4 + 2 * N4, N, copies=1),
    # -- index + pointwise ----------------------------------------------------------------
    # The gather reads all of x (count_numel's rule), the int64 index, writes 64.
    Case(
        "index_gather_then_sin",
        lambda x, i: x[i].sin(),
        (randn(N), randint(N, 64)),
        1,
        N4 + 64 * 8 + 64 * 4,
        64,
    ),
    # The sin is computed at the gathered elements only.
    Case(
        "index_sin_then_gather",
        lambda x, i: x.sin()[i],
        (randn(N), randint(N, 64)),
        1,
        N4 + 64 * 8 + 64 * 4,
        64,
    ),
    Case(
        "index_rows_then_sum",
        lambda x, i: x[i].sum(1),
        (randn(R, C), randint(R, 16)),
        1,
        M4 + 16 * 8 + 16 * 4,
    ),
    Case(
        "index_embedding_scale",
        lambda w, i: F.embedding(i, w) * 2,
        (randn(R, C), randint(R, 16)),
        1,
        M4 + 16 * 8 + 16 * C * 4,
    ),
    Case(
        "index_gather_dim1",
        lambda x, i: torch.gather(x, 1, i) + 1,
        (randn(R, C), randint(C, R, 8)),
        1,
        M4 + R * 8 * 8 + R * 8 * 4,
    ),
    # -- GEMM epilogue ----------------------------------------------------------------------
    # The bias is added in the GEMM's epilogue: one kernel.
    Case(
        "gemm_bias_epilogue",
        lambda x, w, b: F.linear(x, w, b),
        (randn(8, 32), randn(16, 32), randn(16)),
        1,
        (8 * 32 + 16 * 32 + 16) * 4 + 8 * 16 * 4,
        2 * 8 * 16 * 32 + 8 * 16,
    ),
    # Pointwise consumers of a GEMM or convolution run in its epilogue, row by
    # row, and overwrite its output in place: the product is written once
    # and never read back ([Note: epilogue fusion]). relu is a maximum: 1 FLOP.
    Case(
        "gemm_relu_epilogue",
        lambda x, w, b: F.relu(F.linear(x, w, b)),
        (randn(8, 32), randn(16, 32), randn(16)),
        1,
        (8 * 32 + 16 * 32 + 16) * 4 + 8 * 16 * 4,
        2 * 8 * 16 * 32 + 8 * 16 + 8 * 16,
    ),
    Case(
        "gemm_residual_epilogue",
        lambda x, w, r: F.linear(x, w) + r,
        (randn(8, 32), randn(16, 32), randn(8, 16)),
        1,
        (8 * 32 + 16 * 32 + 8 * 16) * 4 + 8 * 16 * 4,
        2 * 8 * 16 * 32 + 8 * 16,
    ),
    # The epilogue re-reads x, which the GEMM reads already: counted once.
    Case(
        "gemm_reads_its_input_again",
        lambda x, w: x @ w + x,
        (randn(16, 16), randn(16, 16)),
        1,
        2 * 16 * 16 * 4 + 16 * 16 * 4,
        2 * 16 * 16 * 16 + 16 * 16,
    ),
    Case(
        "bmm_scale_epilogue",
        lambda a, b: torch.bmm(a, b) * 0.5,
        (randn(4, 8, 16), randn(4, 16, 8)),
        1,
        (4 * 8 * 16 + 4 * 16 * 8) * 4 + 4 * 8 * 8 * 4,
        2 * 4 * 8 * 8 * 16 + 4 * 8 * 8,
    ),
    # Two consumers: the product stays in memory for the second kernel.
    Case(
        "gemm_epilogue_and_a_reader",
        _relu_and_column_sums_of_product,
        (randn(8, 32), randn(32, 16)),
        2,
        # GEMM + relu: x, w -> product, relu; sum: product -> 16 sums
        (8 * 32 + 32 * 16) * 4 + 2 * 8 * 16 * 4 + 8 * 16 * 4 + 16 * 4,
    ),
    # Eval batch norm after a convolution folds into a per-channel scale and
    # shift (one small kernel over the 8 channels: four vectors in, two out,
    # moved before the convolution); the convolution's epilogue applies them
    # and relu.
    Case(
        "conv_bn_relu_epilogue",
        ConvBnRelu,
        (randn(2, 4, 8, 8),),
        2,
        (4 * 8 + 2 * 8) * 4 + (2 * 4 * 8 * 8 + 8 * 4 * 9 + 8 + 2 * 8) * 4 + 2 * 8 * 8 * 8 * 4,
    ),
    Case(
        "conv_residual_relu_epilogue",
        lambda x, w: F.relu(F.conv2d(x, w, padding=1) + x),
        (randn(2, 4, 8, 8), randn(4, 4, 3, 3)),
        1,
        (2 * 4 * 8 * 8 + 4 * 4 * 9) * 4 + 2 * 4 * 8 * 8 * 4,
        2 * 2 * 4 * 8 * 8 * 4 * 9 + 2 * 2 * 4 * 8 * 8,
    ),
]

KERNEL_DEFINITION = re.compile(r"^static int32_t (kernel|extern)\d+\(", re.M)
COPY_BACK = re.compile(r"std::memcpy\((args->inputs|instance->constants)\[")


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def package_sources(path: str) -> tuple[dict[str, Any], str, str]:
    """(manifest, every src/kernels_*.cc, src/model.cc) of the package's model."""
    pkg = Package(path)
    (info,) = pkg.models.values()
    model_dir = pkg.layout.model_dir(info.name)
    kernels = [
        pkg.read(name).decode()
        for name in pkg.index.by_name
        if name.startswith(model_dir + "src/kernels_") and name.endswith(".cc")
    ]
    return info.manifest, "\n".join(kernels), pkg.read(model_dir + "src/model.cc").decode()


def run_both(case: Case, module: nn.Module, path: str) -> None:
    """Runs eager and the package twice on fresh inputs (state carries over)
    and compares outputs and every input afterwards."""
    compiled = AOTCRunnerUtil.load(path)
    eager = copy.deepcopy(module)
    for _ in range(2):
        inputs = case.draw()
        eager_inputs = copy.deepcopy(inputs)
        with torch.no_grad():
            expected = eager(*eager_inputs)
        actual = compiled(*inputs)
        assert_close_to_eager(actual, expected, None, None, prefix=f"{case.name}: ")
        for k, (a, e) in enumerate(zip(inputs, eager_inputs, strict=True)):
            assert_close_to_eager(
                a, e, None, None, prefix=f"{case.name}: input {k} after the run: "
            )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fusion_and_bytes(case: Case) -> None:
    module = case.module()
    path = AOTCRunnerUtil.compile(module, case.draw())
    try:
        check_package(case, module, path)
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def check_package(case: Case, module: nn.Module, path: str) -> None:
    manifest, kernels_cc, model_cc = package_sources(path)
    costs = manifest["costs"]
    calls = [c for c in costs if c["kind"] != "copy"]
    # Kernels and copy-backs, counted in the generated source.
    assert len(KERNEL_DEFINITION.findall(kernels_cc)) == case.kernels, kernels_cc
    assert len(COPY_BACK.findall(model_cc)) == case.copies
    assert len(calls) == case.kernels and len(costs) - len(calls) == case.copies
    # Bytes and FLOPs recorded in the manifest, against the hand-worked figures.
    moved = sum(c["bytes_read"] + c["bytes_written"] for c in costs)
    assert moved == case.bytes, costs
    if case.flops is not None:
        assert sum(c["flops"] for c in costs) == case.flops, costs
    run_both(case, module, path)


def test_inspect_prints_the_costs() -> None:
    from packager.inspection import format_inspection, inspect_package

    module = Fn(lambda x: x.cos().sin()).eval()
    path = AOTCRunnerUtil.compile(module, (torch.randn(N),))
    try:
        text = format_inspection(inspect_package(path))
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    assert "costs      1 kernel call: bytes read + written 4,096 + 4,096, FLOPs 2,048" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("kernel0:0  "))
    assert row.split()[1:] == ["pointwise", "4,096", "4,096", "2,048"]
