"""The Triton GEMM and convolution templates (aot/codegen/triton/templates/
gemm.py, conv.py), run on the CPU with Triton's interpreter against eager,
and every kernel they generate compiled offline for sm_90."""

from __future__ import annotations

import importlib.util

import pytest
import sympy
import torch
from triton_interp import compile_and_interpret, run_interpreted  # noqa: I001 (skips without triton)

from aot.codegen.triton.context import TritonContext, TritonEpilogue
from aot.codegen.triton.launch import TritonArg, TritonCodegenError, TritonKernel
from aot.codegen.triton.templates import TEMPLATES
from aot.codegen.triton.templates.conv import conv_config
from aot.codegen.triton.templates.gemm import gemm_config
from aot.ir.nodes import Buffer, ExternKernel, Layout
from aot.scheduler.schedule import ExternCall

HAVE_LOOP_KERNELS = importlib.util.find_spec("aot.codegen.triton.loop_kernel") is not None
needs_loop_kernels = pytest.mark.skipif(
    not HAVE_LOOP_KERNELS, reason="aot/codegen/triton/loop_kernel.py is not written yet"
)

# Every kernel the tests generate, compiled for sm_90 by the last test.
GENERATED: list[TritonKernel] = []

TOLERANCES = {
    torch.float32: {"atol": 1e-4, "rtol": 1e-4},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
    torch.float16: {"atol": 2e-3, "rtol": 2e-3},
}


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _interpret_externs(module, inputs, dynamic_shapes=None, epilogue=None):
    """compile_and_interpret for graphs of extern calls only, with the
    templates called directly (|epilogue(plan, call)| makes a hand-made
    TritonEpilogue): usable before loop_kernel.py exists."""
    from aot.codegen.cpp.kernel import graph_buffer_dtypes
    from aot.export import lower
    from aot.frontend import capture_module
    from aot.options import ExportOptions
    from aot.scheduler import schedule as make_schedule

    options = ExportOptions(device="cuda", arch="sm_90")
    exported = capture_module(
        module, tuple(inputs), options, name="model", dynamic_shapes=dynamic_shapes
    )
    graph = lower(exported)
    plan = make_schedule(graph)
    ctx = TritonContext(graph_buffer_dtypes(graph), [s.symbol for s in graph.symbols])
    launches = []
    for call in plan.kernels:
        assert isinstance(call, ExternCall), f"{call.name} is a loop kernel"
        epi = epilogue(plan, call) if epilogue else None
        launches.append(TEMPLATES[call.node.kind](call, ctx, epi))
    tensors = [t.clone() for t in inputs]
    outputs = run_interpreted(plan, launches, tensors, [c.value for c in graph.constants])
    return outputs, plan, launches


def check(fn, *inputs, dtype=torch.float32, dynamic_shapes=None, kinds=("mm",)):
    """Runs |fn| through the Triton path and compares with eager; returns
    the launches. Graphs of extern calls only go through the templates
    directly when loop kernels have no generator yet."""
    module = (fn if isinstance(fn, torch.nn.Module) else Fn(fn)).eval()
    run = compile_and_interpret if HAVE_LOOP_KERNELS else _interpret_externs
    outputs, plan, launches = run(module, inputs, dynamic_shapes)
    expected = module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(outputs, expected, strict=True):
        torch.testing.assert_close(got, want, **TOLERANCES[dtype])
    used = {k.node.kind for k in plan.kernels if isinstance(k, ExternCall)}
    assert used & set(kinds), f"no {kinds} kernel in {used}"
    GENERATED.extend(k for ks in launches for k in ks)
    return plan, launches


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


# -- GEMM ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mm_odd_sizes(dtype, monkeypatch):
    # Lowering takes float16 GEMMs for no device yet; the template does.
    monkeypatch.setattr(
        "aot.lowering.extern.KERNEL_DTYPES", (torch.float32, torch.bfloat16, torch.float16)
    )
    check(lambda a, b: a @ b, randn(37, 45, dtype=dtype), randn(45, 29, dtype=dtype), dtype=dtype)


def test_mm_k_multiple_of_block_and_ragged_rows():
    # K a multiple of BLOCK_K (no K masks), M and N past one tile.
    check(lambda a, b: a @ b, randn(70, 64), randn(64, 66))


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.0, 0.5), (1.5, 0.0)])
def test_addmm_1d_bias(alpha, beta):
    check(
        lambda c, a, b: torch.addmm(c, a, b, alpha=alpha, beta=beta),
        randn(19),
        randn(21, 33),
        randn(33, 19),
        kinds=("addmm",),
    )


def test_addmm_2d_bias_bf16():
    dtype = torch.bfloat16
    check(
        lambda c, a, b: torch.addmm(c, a, b, beta=0.5),
        randn(21, 19, dtype=dtype),
        randn(21, 33, dtype=dtype),
        randn(33, 19, dtype=dtype),
        dtype=dtype,
        kinds=("addmm",),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bmm(dtype):
    check(
        torch.bmm,
        randn(3, 17, 40, dtype=dtype),
        randn(3, 40, 23, dtype=dtype),
        dtype=dtype,
        kinds=("bmm",),
    )


def test_bmm_of_transposed_views():
    # a^T b with both read through strides (no copies).
    check(
        lambda a, b: torch.bmm(a.transpose(1, 2), b.transpose(1, 2)),
        randn(2, 24, 17),
        randn(2, 9, 24),
        kinds=("bmm",),
    )


def test_linear_transposed_weight():
    plan, launches = check(torch.nn.Linear(45, 29), randn(37, 45), kinds=("addmm",))
    (kernel,) = launches[0]
    # The weight is read as [K, N] with strides (1, K): no transpose kernel.
    assert len(plan.kernels) == 1 and "* 45" in kernel.source


def test_matmul_of_sliced_views():
    # Offsets and non-unit strides on both operands.
    check(lambda a, b: a[1:, 2:40] @ b[::2].t(), randn(30, 50), randn(40, 38))


def test_matmul_dynamic_rows():
    from torch.export import Dim

    rows = Dim("rows", min=2, max=64)
    x, w = randn(13, 24), randn(24, 20)
    dynamic = {"args": ({0: rows}, None)}
    plan, launches = check(lambda a, b: a @ b, x, w, dynamic_shapes=dynamic)
    (kernel,) = launches[0]
    assert any(a.kind == "size" for a in kernel.args)


def _mm_call(m, n, k, dtype, alpha=1.0, name="extern0", sizes=None) -> ExternCall:
    """A hand-built mm (no export): for compile-only and error tests."""
    a = Buffer("a", dtype, Layout.contiguous([m, k]))
    b = Buffer("b", dtype, Layout.contiguous([k, n]))
    out = Buffer("out", dtype, Layout.contiguous([m, n]))
    node = ExternKernel("mm0", "mm", [a, b], [out], {"alpha": alpha, "beta": 0.0})
    return ExternCall(name, node)


def _ctx() -> TritonContext:
    return TritonContext({})


def test_large_and_decoder_gemms_generate():
    # Compiled (not run) by the last test: the big bf16 tile, decoder rows,
    # float32 and a symbolic M.
    s0 = sympy.Symbol("s0", integer=True, positive=True)
    cases = [
        (8192, 8192, 8192, torch.bfloat16),
        (1, 4096, 4096, torch.bfloat16),
        (2048, 2048, 2048, torch.float32),
        (s0, 1024, 768, torch.float16),
    ]
    for i, (m, n, k, dtype) in enumerate(cases):
        (kernel,) = TEMPLATES["mm"](_mm_call(m, n, k, dtype, name=f"big{i}"), _ctx(), None)
        GENERATED.append(kernel)
    assert GENERATED[-4].constexprs["BLOCK_N"] == 256
    assert any(a.kind == "size" and a.value == s0 for a in GENERATED[-1].args)


def test_gemm_config_heuristic():
    big = gemm_config(8192, 8192, 8192, torch.bfloat16)
    assert (big.block_m, big.block_n, big.block_k) == (128, 256, 64)
    assert big.num_warps == 8 and big.num_stages in (3, 4)
    assert gemm_config(8192, 8192, 8192, torch.float16).block_n == 256
    medium = gemm_config(2048, 2048, 2048, torch.bfloat16)
    assert (medium.block_m, medium.block_n) == (128, 128)
    for m in (1, 8, 16):
        small = gemm_config(m, 4096, 4096, torch.bfloat16)
        assert small.block_m == 16
        # Enough column blocks to keep the SMs reading B.
        assert 4096 // small.block_n >= 100
    fp32 = gemm_config(4096, 4096, 4096, torch.float32)
    assert fp32.block_k <= 32 and fp32.num_warps in (4, 8)
    tiny = gemm_config(40, 40, 40, torch.float32)
    assert tiny.block_m <= 64
    for cfg in (big, medium, small, fp32, tiny):
        assert 3 <= cfg.num_stages <= 4 or cfg is fp32
        assert cfg.num_warps in (4, 8)


def test_nonfinite_alpha_is_refused():
    with pytest.raises(TritonCodegenError, match="alpha"):
        TEMPLATES["mm"](_mm_call(16, 16, 16, torch.float32, alpha=float("inf")), _ctx(), None)


def test_unsupported_dtype_is_refused():
    with pytest.raises(TritonCodegenError, match="float64"):
        TEMPLATES["mm"](_mm_call(16, 16, 16, torch.float64), _ctx(), None)


# -- hand-made epilogues ----------------------------------------------------------------


def _relu_bias_epilogue(shares: bool):
    """relu(P + bias[col]) into the product's buffer, through a helper."""

    def make(plan, call):
        out = call.node.outputs[0]
        n = int(out.layout.sizes[-1])
        bias = plan.graph.inputs[2]
        args = [
            TritonArg("epi_bias", "pointer", buffer=bias.name, dtype=bias.dtype),
            TritonArg("epi_out", "pointer", buffer=out.name, dtype=out.dtype),
        ]

        def body(index, value, mask):
            return [
                f"epi_b = tl.load(epi_bias + {index} % {n}, mask={mask}, other=0.0)",
                f"epi_v = epi_relu({value} + epi_b.to(tl.float32))",
                f"tl.store(epi_out + {index}, epi_v.to(epi_out.dtype.element_ty), mask={mask})",
            ]

        helpers = "@triton.jit\ndef epi_relu(x):\n    return tl.maximum(x, 0.0)\n"
        return TritonEpilogue(args, body, shares_product=shares, helpers=helpers)

    return make


@pytest.mark.parametrize("shares", [True, False])
@pytest.mark.parametrize("kind", ["mm", "conv"])
def test_hand_made_epilogue(shares, kind):
    if kind == "mm":
        fn = Fn(lambda a, b, bias: a @ b)
        inputs = [randn(20, 24), randn(24, 18), randn(18)]

        def expected(a, b, bias):
            return torch.relu(a @ b + bias)
    else:
        conv = torch.nn.Conv2d(3, 5, 3, padding=1)
        fn = Fn(lambda x, w, bias: torch.nn.functional.conv2d(x, w, padding=1))
        inputs = [randn(2, 3, 4, 6), randn(5, 3, 3, 3), randn(6)]  # bias per w position

        def expected(x, w, bias):
            return torch.relu(torch.nn.functional.conv2d(x, w, padding=1) + bias)

        del conv
    outputs, plan, launches = _interpret_externs(
        fn.eval(), inputs, epilogue=_relu_bias_epilogue(shares)
    )
    torch.testing.assert_close(outputs[0], expected(*inputs), **TOLERANCES[torch.float32])
    (kernel,) = launches[0]
    assert ("tl.store(out_ptr" in kernel.source) is not shares
    assert kernel.source.index("def epi_relu") < kernel.source.index(f"def {kernel.name}")
    assert [a.name for a in kernel.args][-2:] == ["epi_bias", "epi_out"]
    GENERATED.append(kernel)


# -- convolution -------------------------------------------------------------------------

CONVS = {
    "conv2d_pad": (lambda: torch.nn.Conv2d(4, 6, 3, padding=1), (2, 4, 7, 9)),
    "conv2d_stride_dilation": (
        lambda: torch.nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False),
        (2, 4, 9, 8),
    ),
    "conv2d_groups_rect": (lambda: torch.nn.Conv2d(4, 6, (3, 2), groups=2), (1, 4, 6, 5)),
    "depthwise": (lambda: torch.nn.Conv2d(6, 6, 3, groups=6, padding=1), (2, 6, 5, 7)),
    "depthwise_stride_multiplier": (
        lambda: torch.nn.Conv2d(3, 6, 3, stride=2, groups=3, padding=1),
        (1, 3, 7, 6),
    ),
    "depthwise_1d": (lambda: torch.nn.Conv1d(4, 4, 5, padding=2, dilation=2, groups=4), (2, 4, 9)),
    "conv1d": (lambda: torch.nn.Conv1d(3, 5, 3, stride=2, padding=1), (2, 3, 11)),
    "conv3d": (lambda: torch.nn.Conv3d(2, 4, 3, padding=1), (1, 2, 4, 5, 6)),
    "conv3d_groups_stride": (
        lambda: torch.nn.Conv3d(4, 4, (2, 3, 3), stride=(1, 2, 2), groups=2, bias=False),
        (1, 4, 3, 6, 5),
    ),
    "transposed2d": (
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        (2, 4, 5, 4),
    ),
    "transposed2d_groups_dilation": (
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=2),
        (1, 4, 5, 4),
    ),
    "transposed1d": (lambda: torch.nn.ConvTranspose1d(3, 4, 4, stride=3), (2, 3, 6)),
    "transposed3d": (
        lambda: torch.nn.ConvTranspose3d(2, 3, 2, stride=2, bias=False),
        (1, 2, 2, 3, 3),
    ),
    "pointwise_1x1_wide": (lambda: torch.nn.Conv2d(40, 20, 1), (1, 40, 3, 5)),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_convolution(case):
    make, shape = CONVS[case]
    check(make(), randn(*shape), kinds=("convolution",))


def test_convolution_bf16():
    dtype = torch.bfloat16
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).to(dtype)
    check(conv, randn(2, 8, 6, 5, dtype=dtype), dtype=dtype, kinds=("convolution",))


def test_depthwise_is_direct_and_dense_is_a_dot():
    _, launches = check(CONVS["depthwise"][0](), randn(1, 6, 4, 4), kinds=("convolution",))
    assert "tl.dot" not in launches[0][0].source
    _, launches = check(CONVS["conv1d"][0](), randn(1, 3, 8), kinds=("convolution",))
    assert "tl.dot" in launches[0][0].source


def test_conv_config():
    # ResNet-style 3x3, 256 channels: wide tiles, deep K steps.
    cfg = conv_config(8 * 14 * 14, 256, 256 * 9, torch.bfloat16)
    assert cfg.block_n == 128 and cfg.block_k == 64
    # Three input channels, 7x7: K steps no deeper than the reduction.
    assert conv_config(112 * 112, 64, 3 * 49, torch.bfloat16).block_k == 64
    assert conv_config(100, 4, 12, torch.float32).block_k == 16
    assert conv_config(100, 4, 12, torch.float32).block_n == 16


def _conv_call(groups: int) -> ExternCall:
    x = Buffer("x", torch.float32, Layout.contiguous([1, 4, 1, 5, 5]))
    w = Buffer("w", torch.float32, Layout.contiguous([6, 4 // max(groups, 1), 1, 3, 3]))
    out = Buffer("out", torch.float32, Layout.contiguous([1, 6, 3, 3]))
    params = {
        "stride": [1, 1, 1],
        "padding": [0, 0, 0],
        "dilation": [1, 1, 1],
        "transposed": False,
        "output_padding": [0, 0, 0],
        "groups": groups,
        "spatial_dims": 2,
    }
    return ExternCall("extern0", ExternKernel("conv0", "convolution", [x, w], [out], params))


def test_convolution_bad_groups_refused():
    with pytest.raises(TritonCodegenError, match="groups 3 must divide"):
        TEMPLATES["convolution"](_conv_call(3), _ctx(), None)


# -- epilogues made by the scheduler (loop_kernel.generate_epilogue) ---------------------


def _fused(plan) -> list[ExternCall]:
    return [k for k in plan.kernels if isinstance(k, ExternCall) and k.epilogue is not None]


@needs_loop_kernels
@pytest.mark.parametrize(
    "name,module,shapes",
    [
        (
            "linear_relu",
            lambda: torch.nn.Sequential(torch.nn.Linear(24, 20), torch.nn.ReLU()),
            [(3, 5, 24)],
        ),
        (
            "gelu_fc",
            lambda: torch.nn.Sequential(torch.nn.Linear(24, 20), torch.nn.GELU()),
            [(9, 24)],
        ),
        (
            "conv_bn_relu",
            lambda: torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
            ),
            [(2, 3, 5, 6)],
        ),
    ],
)
def test_scheduler_epilogues(name, module, shapes):
    m = module().eval()
    if name == "conv_bn_relu":
        bn = m[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    plan, _ = check(m, *(randn(*s) for s in shapes), kinds=("addmm", "mm", "convolution"))
    assert len(_fused(plan)) == 1


RESIDUALS = {
    "linear_residual": (lambda lin, conv: lambda x: lin(x) + x, (7, 16), "addmm"),
    "conv_residual": (lambda lin, conv: lambda x: conv(x) + x, (1, 4, 5, 5), "convolution"),
    "bmm_scaled": (lambda lin, conv: lambda a, b: torch.bmm(a, b) * 0.5, None, "bmm"),
}


@needs_loop_kernels
@pytest.mark.parametrize("case", sorted(RESIDUALS))
def test_scheduler_epilogue_residuals(case):
    make, shape, kind = RESIDUALS[case]
    fn = make(torch.nn.Linear(16, 16), torch.nn.Conv2d(4, 4, 3, padding=1))
    inputs = [randn(*shape)] if shape else [randn(2, 5, 8), randn(2, 8, 6)]
    plan, _ = check(fn, *inputs, kinds=(kind,))
    assert [k.node.kind for k in _fused(plan)] == [kind]


@needs_loop_kernels
def test_scheduler_epilogue_bf16_linear_relu():
    dtype = torch.bfloat16
    model = torch.nn.Sequential(torch.nn.Linear(24, 20), torch.nn.ReLU()).to(dtype)
    plan, _ = check(model, randn(6, 24, dtype=dtype), dtype=dtype, kinds=("addmm",))
    assert len(_fused(plan)) == 1


def test_bmm_broadcast_batch():
    # The expanded operand is read with batch stride 0.
    check(
        lambda a, w: torch.matmul(a, w.expand(3, 8, 6)),
        randn(3, 5, 8),
        randn(1, 8, 6),
        kinds=("bmm",),
    )


def test_linear_of_a_transposed_3d_input_is_one_folded_gemm():
    # Multi-head attention's in-projection of a seq-first view: torch makes a
    # bmm over the sequence with the weight broadcast (batch stride 0); the
    # template runs it as one GEMM over batch*M rows ([Note: folded batch]).
    linear = torch.nn.Linear(16, 24)
    plan, launches = check(
        lambda x: linear(x.transpose(0, 1)),
        randn(3, 7, 16),
        kinds=("bmm",),
    )
    (source,) = [k.source for group in launches for k in group]
    assert "(ram // 3)" in source  # rows are (sequence, batch) pairs of the view


@needs_loop_kernels
def test_convolution_dynamic_batch_and_width():
    from torch.export import Dim

    conv = torch.nn.Conv2d(3, 4, 3, padding=1, stride=2)
    dynamic = {"args": ({0: Dim("b", min=1, max=8), 3: Dim("w", min=4, max=32)},)}
    _, launches = check(
        lambda x: torch.relu(conv(x)),
        randn(2, 3, 7, 9),
        dynamic_shapes=dynamic,
        kinds=("convolution",),
    )
    assert any(a.kind == "size" for a in launches[0][0].args)


# -- offline compilation -------------------------------------------------------------------


def test_zz_generated_kernels_compile_for_sm90():
    """Every kernel above, compiled for sm_90 in both variants (one call)."""
    from aot.build.triton_build import compile_kernels

    if not GENERATED:
        pytest.skip("no kernels generated (run the whole module)")
    unique: dict[tuple, TritonKernel] = {}
    for k in GENERATED:
        key = (
            k.source.replace(f"def {k.name}(", "def _("),
            tuple(k.constexprs.items()),
            k.num_warps,
            k.num_stages,
            tuple(a.signature() for a in k.args),
        )
        unique.setdefault(key, k)
    kernels = []
    for i, k in enumerate(unique.values()):  # names unique within the batch
        name = f"k{i}_{k.name}"
        kernels.append(
            TritonKernel(
                name=name,
                source=k.source.replace(f"def {k.name}(", f"def {name}("),
                args=k.args,
                grid=k.grid,
                constexprs=k.constexprs,
                num_warps=k.num_warps,
                num_stages=k.num_stages,
            )
        )
    compiled = compile_kernels(kernels, "sm_90")
    assert len(compiled) == 2 * len(kernels)
