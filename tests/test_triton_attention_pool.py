"""The Triton templates for scaled_dot_product_attention and pooling
(aot/codegen/triton/templates/attention.py, pool.py), run with Triton's
interpreter against eager, then every generated kernel compiled offline for
sm_90. Shapes are small (the interpreter is slow) but span several query and
key blocks, ragged ends and padded head dims."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.triton_interp import InterpretedIndexError, compile_and_interpret

aten = torch.ops.aten

# Every launch the tests generate, compiled for sm_90 by the last test.
_KERNELS: list = []


def _record(kernels: list) -> None:
    """Keeps |kernels| (this file's templates', not loop kernels) for the
    compile test, renamed apart from other models'."""
    tag = f"t{len(_KERNELS)}_"
    for kernel in kernels:
        if not kernel.name.startswith("extern"):
            continue
        renamed = tag + kernel.name
        source = kernel.source.replace(kernel.name, renamed)
        _KERNELS.append(dataclasses.replace(kernel, name=renamed, source=source))


def _run(
    module: nn.Module, inputs: tuple, record: bool = True, **kwargs: object
) -> list[torch.Tensor]:
    """|module|'s outputs, interpreted; its kernels kept for the compile test
    when |record| (one dtype of a model is enough to keep it quick)."""
    outputs, _, launches = compile_and_interpret(module.eval(), inputs, **kwargs)
    if record:
        _record([k for ks in launches for k in ks])
    return outputs


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=generator).to(dtype)


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    if dtype == torch.float32:
        return {"atol": 2e-5, "rtol": 2e-5}
    return {"atol": 2e-2, "rtol": 2e-2}


# -- attention ---------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, **self.kwargs)


class MaskedAttention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)


class PackedAttention(nn.Module):
    """q, k, v sliced from one packed [B, L, 3, H, E] projection: strided views
    at offsets, in [B, L, H, E] memory order."""

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
        return F.scaled_dot_product_attention(q, k, v, scale=0.3)


def _check_attention(model: nn.Module, inputs: tuple, dtype: torch.dtype = torch.float32) -> None:
    (actual,) = _run(model, inputs)
    with torch.no_grad():
        expected = model(*(t.float() if t.is_floating_point() else t for t in inputs))
    torch.testing.assert_close(actual.float(), expected, **_tolerance(dtype))


def test_sdpa_causal_several_blocks() -> None:
    # 70 rows: two query blocks of 64 and three key blocks of 32 (float32),
    # ragged at both ends; the diagonal crosses blocks.
    q, k, v = (_randn(1, 2, 70, 16, seed=i) for i in range(3))
    _check_attention(Attention(is_causal=True), (q, k, v))


def test_sdpa_causal_query_longer_than_keys() -> None:
    # Top-left causal with L != S, as eager: row i sees keys j <= i.
    q = _randn(1, 2, 40, 16)
    k, v = _randn(1, 2, 23, 16, seed=1), _randn(1, 2, 23, 16, seed=2)
    _check_attention(Attention(is_causal=True), (q, k, v))
    q2 = _randn(1, 1, 20, 16, seed=3)
    k2, v2 = _randn(1, 1, 50, 16, seed=4), _randn(1, 1, 50, 16, seed=5)
    _check_attention(Attention(is_causal=True), (q2, k2, v2))


def test_sdpa_odd_head_dims_and_lengths() -> None:
    # E = 24 and Ev = 40 padded to 32 and 64; L != S, S ragged.
    q, k, v = _randn(2, 3, 21, 24), _randn(2, 3, 45, 24, seed=1), _randn(2, 3, 45, 40, seed=2)
    _check_attention(Attention(), (q, k, v))


class ComputedQueryAttention(nn.Module):
    """The query a loop kernel's output (a plain buffer, not a view)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q * 2.0, k, v)


def test_sdpa_computed_query() -> None:
    q, k, v = _randn(1, 2, 9, 16), _randn(1, 2, 20, 16, seed=1), _randn(1, 2, 20, 16, seed=2)
    _check_attention(ComputedQueryAttention(), (q, k, v))


def test_sdpa_decode_row() -> None:
    q, k, v = _randn(2, 2, 1, 32), _randn(2, 2, 37, 32, seed=1), _randn(2, 2, 37, 32, seed=2)
    _check_attention(Attention(), (q, k, v))


def test_sdpa_strided_inputs_and_scale() -> None:
    _check_attention(PackedAttention(), (_randn(2, 19, 3, 3, 16),))


def test_sdpa_grouped_query_attention() -> None:
    q = _randn(1, 4, 32, 16)
    k, v = _randn(1, 2, 33, 16, seed=1), _randn(1, 2, 33, 16, seed=2)
    _check_attention(Attention(enable_gqa=True, is_causal=True), (q, k, v))


def test_sdpa_bool_mask_with_fully_masked_row() -> None:
    q, k, v = _randn(2, 2, 12, 16), _randn(2, 2, 40, 16, seed=1), _randn(2, 2, 40, 16, seed=2)
    mask = _randn(12, 40, seed=3) > 0  # [L, S] broadcast over batch and heads
    mask[5] = False  # row 5 sees no key: the CPU kernel (and eager) output 0
    (actual,) = _run(MaskedAttention(), (q, k, v, mask))
    expected = MaskedAttention()(q, k, v, mask)
    expected[:, :, 5] = 0.0
    torch.testing.assert_close(actual, expected, **_tolerance(torch.float32))
    assert torch.all(actual[:, :, 5] == 0)


def test_sdpa_float_mask() -> None:
    # L = 16 and S = 64 fill their blocks: no row or key masking at all.
    q, k, v = _randn(2, 2, 16, 16), _randn(2, 2, 64, 16, seed=1), _randn(2, 2, 64, 16, seed=2)
    mask = _randn(2, 1, 16, 64, seed=3)  # broadcast over heads
    mask[:, :, 3, ::2] = float("-inf")
    _check_attention(MaskedAttention(), (q, k, v, mask))


def _direct_sdpa(params: dict, *tensors: torch.Tensor, lse: bool = True) -> list[torch.Tensor]:
    """Runs the sdpa template on an ExternCall made by hand: export never
    yields the (out, logsumexp) form (_scaled_dot_product_flash_attention_for_cpu
    decomposes), but lowering supports it."""
    from aot.codegen.triton.context import TritonContext
    from aot.codegen.triton.templates import TEMPLATES
    from aot.ir.nodes import Buffer, ExternKernel, Layout
    from aot.scheduler.schedule import ExternCall
    from tests.triton_interp import load_kernel

    q = tensors[0]
    memory = {f"in{i}": t.contiguous() for i, t in enumerate(tensors)}
    inputs = [Buffer(n, t.dtype, Layout.contiguous(list(t.shape))) for n, t in memory.items()]
    shapes = {"out": (*q.shape[:3], tensors[2].shape[3]), "lse": tuple(q.shape[:3])}
    memory["out"] = torch.empty(shapes["out"], dtype=q.dtype)
    memory["lse"] = torch.empty(shapes["lse"], dtype=torch.float32)
    outputs = [Buffer("out", q.dtype, Layout.contiguous(list(shapes["out"])))]
    if lse:
        outputs.append(Buffer("lse", torch.float32, Layout.contiguous(list(shapes["lse"]))))
    node = ExternKernel("extern0", "sdpa", inputs, outputs, params)
    dtypes = {n: t.dtype for n, t in memory.items()}
    (kernel,) = TEMPLATES["sdpa"](ExternCall("extern0", node), TritonContext(dtypes), None)
    _record([kernel])
    args = [memory[a.buffer].view(-1) if a.kind == "pointer" else int(a.value) for a in kernel.args]
    load_kernel(kernel)[tuple(int(g) for g in kernel.grid)](*args, **kernel.constexprs)
    return [memory["out"], memory["lse"]][: len(outputs)]


def test_sdpa_logsumexp_and_fully_masked_rows() -> None:
    q, k, v = _randn(1, 2, 30, 24), _randn(1, 2, 41, 24, seed=1), _randn(1, 2, 41, 24, seed=2)
    mask = _randn(1, 2, 30, 41, seed=3)
    mask[0, 1, 7] = float("-inf")  # a fully masked row: output 0, logsumexp -inf
    params = {"scale": 0.5, "is_causal": False, "has_mask": True}
    out, lse = _direct_sdpa(params, q, k, v, mask)
    ref_out, ref_lse = aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, attn_mask=mask, scale=0.5
    )
    assert torch.all(out[0, 1, 7] == 0) and lse[0, 1, 7] == float("-inf")
    # The CPU kernel's convention (eager's flash-for-cpu kernel differs here).
    ref_out[0, 1, 7], ref_lse[0, 1, 7] = 0.0, float("-inf")
    torch.testing.assert_close(out, ref_out, **_tolerance(torch.float32))
    torch.testing.assert_close(lse, ref_lse, **_tolerance(torch.float32))
    causal = {"scale": None, "is_causal": True, "has_mask": False}
    out, lse = _direct_sdpa(causal, q, k, v)
    ref_out, ref_lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref_out, **_tolerance(torch.float32))
    torch.testing.assert_close(lse, ref_lse, **_tolerance(torch.float32))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_16_bit(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    # 128 x 64 tensor-core tiles; fp16 lowers only with the CPU's dtype check
    # widened (its kernels have no fp16; the GPU template does).
    import aot.lowering.extern as extern

    monkeypatch.setattr(extern, "KERNEL_DTYPES", (*extern.KERNEL_DTYPES, torch.float16))
    q, k, v = (_randn(1, 2, 80, 64, dtype=dtype, seed=i) for i in range(3))
    _check_attention(Attention(is_causal=True), (q, k, v), dtype)


def test_sdpa_dynamic_lengths() -> None:
    # L and S are run-time values (size args); the compile test builds it too.
    q, k, v = _randn(1, 2, 9, 16), _randn(1, 2, 35, 16, seed=1), _randn(1, 2, 35, 16, seed=2)
    length = torch.export.Dim("length", min=2, max=512)
    keys = torch.export.Dim("keys", min=2, max=512)
    shapes = {"q": {2: length}, "k": {2: keys}, "v": {2: keys}}
    model = Attention(is_causal=True).eval()
    (actual,) = _run(model, (q, k, v), dynamic_shapes=shapes)
    torch.testing.assert_close(actual, model(q, k, v), **_tolerance(torch.float32))


# -- pooling -----------------------------------------------------------------------


class Pools(nn.Module):
    """Max (indices, dilation, ceil_mode, padding), average (count_include_pad,
    divisor_override, ceil_mode), adaptive average and max pooling in 3-D
    (batched and unbatched), 2-D and 1-D."""

    def forward(self, x3: torch.Tensor, u3: torch.Tensor, x2: torch.Tensor) -> tuple:
        m3, i3 = F.max_pool3d(
            x3, (3, 2, 3), (2, 1, 2), (1, 1, 0), (1, 2, 1), ceil_mode=True, return_indices=True
        )
        return (
            m3,
            i3,
            F.max_pool3d(u3, 2),
            F.avg_pool3d(x3, (2, 3, 3), (1, 2, 2), (0, 1, 1), True, False),
            F.avg_pool3d(u3, (2, 2, 3), divisor_override=-3),
            F.adaptive_avg_pool3d(x3, (3, 2, 4)),
            *F.adaptive_max_pool3d(u3, (2, 3, 2), return_indices=True),
            *F.max_pool2d(x2, 3, 2, 1, 2, ceil_mode=True, return_indices=True),
            nn.MaxPool2d(2, return_indices=True)(x2)[1],
            F.avg_pool2d(x2, (3, 2), (2, 1), (1, 1), True, False),
            F.avg_pool2d(x2, 3, 2, 1, count_include_pad=True),
            F.avg_pool2d(x2, 2, divisor_override=-2),
            F.adaptive_avg_pool2d(x2, (4, 5)),
            *F.adaptive_max_pool2d(x2, (5, 3), return_indices=True),
            F.max_pool1d(x2.flatten(2), 4, 3, 1),
            F.avg_pool1d(x2.flatten(2), 3, 2, 1),
            F.adaptive_avg_pool1d(x2.flatten(2), 7),
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pooling(dtype: torch.dtype) -> None:
    x3, u3, x2 = _randn(2, 2, 5, 6, 7), _randn(2, 4, 5, 6, seed=1), _randn(2, 3, 9, 10, seed=2)
    x2[0, 0, 4, 4] = float("nan")  # NaN wins max pooling, as eager
    inputs = tuple(t.to(dtype) for t in (x3, u3, x2))
    model = Pools()
    actual = _run(model, inputs, record=dtype == torch.float32)
    with torch.no_grad():
        # Eager has no bf16 avg_pool3d: compare with float32, rounded once.
        expected = model(*(t.float() for t in inputs))
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e.is_floating_point():
            e = e.to(dtype)
        torch.testing.assert_close(a, e, equal_nan=True, msg=lambda m, i=i: f"output {i}: {m}")


class DynamicPools(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return (
            *F.max_pool2d(x, 3, 2, 1, return_indices=True),
            F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
            F.adaptive_avg_pool2d(x, 3),
            *F.adaptive_max_pool2d(x, (2, 3), return_indices=True),
        )


def test_pooling_dynamic_sizes() -> None:
    # Batch, height and width are run-time values (size args; int64 index math).
    x = _randn(2, 3, 11, 13)
    dims = {0: torch.export.Dim("n", max=64), 2: torch.export.Dim("h", min=6, max=512)}
    dims[3] = torch.export.Dim("w", min=6, max=512)
    actual = _run(DynamicPools(), (x,), dynamic_shapes={"x": dims})
    for a, e in zip(actual, DynamicPools()(x), strict=True):
        torch.testing.assert_close(a, e)


class PoolGradients(nn.Module):
    """max_pool{2,3}d_with_indices_backward with overlapping windows (the
    gradients of one input position add up), unbatched too."""

    def forward(self, x2: torch.Tensor, g2: torch.Tensor, x3: torch.Tensor, g3: torch.Tensor):
        _, i2 = F.max_pool2d(x2, 3, 2, 1, 1, True, True)
        _, i3 = F.max_pool3d(x3, 2, 1, return_indices=True)
        return (
            aten.max_pool2d_with_indices_backward(g2, x2, [3, 3], [2, 2], [1, 1], [1, 1], True, i2),
            aten.max_pool3d_with_indices_backward(
                g3, x3, [2] * 3, [1] * 3, [0] * 3, [1] * 3, False, i3
            ),
        )


def _pool_gradient_inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    x2, x3 = _randn(3, 9, 10, dtype=dtype), _randn(2, 3, 4, 5, 6, dtype=dtype, seed=1)
    g2, g3 = _randn(3, 5, 6, dtype=dtype, seed=2), _randn(2, 3, 3, 4, 5, dtype=dtype, seed=3)
    return x2, g2, x3, g3


def test_max_pool_backward() -> None:
    inputs = _pool_gradient_inputs(torch.float32)
    actual = _run(PoolGradients(), inputs)
    expected = PoolGradients()(*inputs)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_max_pool_backward_bf16_generates() -> None:
    # bf16 atomic adds (sm_90 has them) are beyond the interpreter: only
    # generated here, and compiled by the last test.
    from aot.codegen.triton.generate import generate_triton
    from aot.codegen.wrapper.cpp_wrapper import debug_handles
    from aot.export import lower
    from aot.frontend import capture_module
    from aot.options import ExportOptions
    from aot.scheduler import schedule

    options = ExportOptions(device="cuda", arch="sm_90")
    inputs = _pool_gradient_inputs(torch.bfloat16)
    exported = capture_module(PoolGradients().eval(), inputs, options, name="model")
    plan = schedule(lower(exported))
    launches = [k for ks in generate_triton(plan, debug_handles(plan)) for k in ks]
    assert any(k.name.endswith("_scatter") for k in launches)
    _record(launches)


class Scatter(nn.Module):
    """The gradient with the indices as an input, to feed it a bad one."""

    def forward(self, g: torch.Tensor, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return aten.max_pool2d_with_indices_backward(
            g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, indices
        )


def test_max_pool_backward_refuses_bad_indices() -> None:
    g, x = _randn(1, 2, 2, 2), _randn(1, 2, 4, 4, seed=1)
    _, indices = F.max_pool2d(x, 2, return_indices=True)
    indices[0, 0, 1, 1] = -1  # no maximum: skipped, as eager
    (actual,) = _run(Scatter(), (g, x, indices))
    torch.testing.assert_close(actual, Scatter()(g, x, indices))
    indices[0, 1, 1, 0] = 16  # the plane has 16 elements
    with pytest.raises(InterpretedIndexError, match="index 16 out of range"):
        compile_and_interpret(Scatter().eval(), (g, x, indices))


# -- offline compilation -----------------------------------------------------------


def test_kernels_compile_for_sm90() -> None:
    """Every kernel the tests above generated (run after them, in file order)."""
    from aot.build.triton_build import compile_kernels

    if not _KERNELS:
        pytest.skip("run with the tests that generate kernels")
    compiled = compile_kernels(_KERNELS, "sm_90")
    assert len(compiled) == 2 * len(_KERNELS)
