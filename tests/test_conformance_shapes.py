"""Conformance of shapes, reductions and numerical corners, in the style of
PyTorch's test_aot_inductor.py: small models with one behaviour each, compiled
with aotc, run through the C++ runtime (AOTCRunnerUtil) and compared with
eager.

Every model is compiled from one set of example inputs and then run on those
and on a fresh random set of the same shapes (never zeros), so a kernel that
baked an example value in, or read the wrong element, shows up. float32
unless the test says bfloat16.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aot.testing import AOTCRunnerUtil, assert_close_to_eager
from tests.devices import run_compiled

Inputs = tuple[Any, ...]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, g: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(dtype)


def uniform(*shape: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).uniform_(low, high, generator=g)


def check(
    model: nn.Module,
    make_inputs: Callable[[torch.Generator], Inputs],
    atol: float | None = None,
    rtol: float | None = None,
) -> None:
    """Compiles |model| on make_inputs(seed 0) and checks it against eager on
    those inputs and on make_inputs(seed 1)."""
    model = model.eval()
    trials = [make_inputs(_gen(0)), make_inputs(_gen(1))]
    actual = run_compiled(model, trials)
    for inputs, got in zip(trials, actual, strict=True):
        with torch.no_grad():
            expected = model(*inputs)
        assert_close_to_eager(got, expected, atol, rtol)


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial parameters and buffers (norm weights are ones by default)."""
    g = _gen(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                continue
            if "running_var" in name:
                t.copy_(torch.empty(t.shape).uniform_(0.5, 2.0, generator=g))
            else:
                t.copy_(
                    torch.randn(t.shape, generator=g) * 0.5 + (1.0 if "weight" in name else 0.0)
                )
    return module.eval()


class Lambda(nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


# ---------------------------------------------------------------- reductions

X3 = (3, 5, 7)  # odd, distinct sizes: a reduction over the wrong dim changes shape


def _each_dim(op: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor], tuple]:
    """|op| over dim 0, 1, 2, over all dims, with keepdim both ways."""

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            op(x, 0, False),
            op(x, 1, True),
            op(x, 2, False),
            op(x, -1, True),
            op(x, (0, 1, 2), False),
            op(x, (0, 2), True),
        )

    return fn


REDUCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "sum": lambda x, d, k: x.sum(d, keepdim=k),
    "mean": lambda x, d, k: x.mean(d, keepdim=k),
    "amax": lambda x, d, k: x.amax(d, keepdim=k),
    "amin": lambda x, d, k: x.amin(d, keepdim=k),
    "var": lambda x, d, k: x.var(d, keepdim=k),
    "std": lambda x, d, k: x.std(d, keepdim=k, correction=0),
    "logsumexp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_over_each_dim(native_build, name):
    check(Lambda(_each_dim(REDUCTIONS[name])), lambda g: (randn(*X3, g=g),))


def test_prod_over_each_dim(native_build):
    # prod takes one dim at a time; values near 1 keep 105 factors finite.
    def fn(x):
        return x.prod(0), x.prod(1, keepdim=True), x.prod(2), x.prod()

    check(Lambda(fn), lambda g: (uniform(*X3, low=0.7, high=1.3, g=g),))


def test_argmax_argmin_over_each_dim(native_build):
    def fn(x):
        return x.argmax(0), x.argmax(1, keepdim=True), x.argmin(2), x.argmax(), x.argmin(-1, True)

    check(Lambda(fn), lambda g: (randn(*X3, g=g),))


def test_softmax_log_softmax_dim0_and_last(native_build):
    def fn(x):
        return x.softmax(0), x.softmax(-1), F.log_softmax(x, 0), F.log_softmax(x, -1)

    check(Lambda(fn), lambda g: (randn(*X3, g=g) * 3,))


def test_softmax_bfloat16(native_build):
    check(Lambda(lambda x: x.softmax(-1)), lambda g: (randn(4, 33, g=g, dtype=torch.bfloat16),))


# ------------------------------------------------------------ normalisations


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_last_two_dims(native_build, dtype):
    model = _randomize(nn.LayerNorm([5, 7]), 3).to(dtype)
    check(model, lambda g: (randn(4, 5, 7, g=g, dtype=dtype) * 2 + 1,))


def test_group_norm(native_build):
    model = _randomize(nn.GroupNorm(3, 6), 4)
    check(model, lambda g: (randn(2, 6, 5, 3, g=g) + 0.5,))


class BatchNorms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm1d(6)
        self.bn2 = nn.BatchNorm2d(6)

    def forward(self, a, b, c):
        return self.bn1(a), self.bn1(b), self.bn2(c)


def test_batch_norm_eval_1d_2d(native_build):
    model = _randomize(BatchNorms(), 5)
    check(model, lambda g: (randn(4, 6, g=g), randn(3, 6, 9, g=g), randn(2, 6, 3, 5, g=g)))


# -------------------------------------------------------------- broadcasting


def test_broadcast_size1_dims_on_both_sides(native_build):
    check(Lambda(lambda a, b: a * b + a), lambda g: (randn(4, 1, 6, g=g), randn(1, 5, 1, g=g)))


def test_broadcast_one_vs_column_vs_matrix(native_build):
    check(
        Lambda(lambda a, b, c: (a + b, a * c - b, b / (c.abs() + 1))),
        lambda g: (randn(1, g=g), randn(6, 1, g=g), randn(6, 9, g=g)),
    )


def test_broadcast_scalar_tensor(native_build):
    check(
        Lambda(lambda s, x: (x * s + s, torch.maximum(s, x), s - x.sum())),
        lambda g: (randn(g=g), randn(3, 4, g=g)),
    )


def test_broadcast_rank_mismatch(native_build):
    check(
        Lambda(lambda v, x, y: (x + v, v - y, (x.unsqueeze(0) * y).sum(1))),
        lambda g: (randn(6, g=g), randn(3, 6, g=g), randn(2, 3, 6, g=g)),
    )


# -------------------------------------------------------------------- shapes


def test_large_pointwise_and_reduction(native_build):
    def fn(x):
        y = torch.relu(x * 1.5 - 0.25)
        return y.sum(-1), y.mean(0), x.amax(1)

    check(Lambda(fn), lambda g: (randn(512, 1024, g=g),), atol=1e-3, rtol=1e-4)


def test_tiny_shapes(native_build):
    def fn(a, b):
        return a.exp() + b, (a * b).sum(), b.softmax(-1), (a + 1).mean(0, keepdim=True)

    check(Lambda(fn), lambda g: (randn(1, g=g), randn(1, 1, g=g)))


def test_odd_sizes(native_build):
    def fn(a, b, c):
        return (
            a.softmax(-1),
            a.sum(0),
            (b[:, None, None] * c).sum(-1),
            torch.cumsum(b, 0),
        )

    check(
        Lambda(fn),
        lambda g: (randn(13, 1023, g=g), randn(7, g=g), randn(7, 13, 1023, g=g)),
        atol=1e-4,
        rtol=1e-4,
    )


# --------------------------------------------------------------------- GEMMs


def test_mm(native_build):
    check(Lambda(torch.mm), lambda g: (randn(7, 13, g=g), randn(13, 5, g=g)))


def test_bmm(native_build):
    check(Lambda(torch.bmm), lambda g: (randn(3, 7, 13, g=g), randn(3, 13, 5, g=g)))


def test_matmul_3d_at_2d_broadcast(native_build):
    check(
        Lambda(lambda a, b, c: (a @ b, torch.matmul(c, a))),
        lambda g: (randn(2, 7, 13, g=g), randn(13, 5, g=g), randn(2, 1, 5, 7, g=g)),
    )


def test_linear_without_bias(native_build):
    model = _randomize(nn.Linear(13, 6, bias=False), 6)
    check(model, lambda g: (randn(2, 3, 13, g=g),))


def test_addmm_beta_alpha(native_build):
    check(
        Lambda(
            lambda c, a, b, r: (
                torch.addmm(c, a, b, beta=0.5, alpha=-2.0),
                torch.addmm(r, a, b, beta=3.0, alpha=0.25),
            )
        ),
        lambda g: (randn(7, 5, g=g), randn(7, 13, g=g), randn(13, 5, g=g), randn(5, g=g)),
    )


def test_matmul_bfloat16(native_build):
    model = _randomize(nn.Linear(64, 24), 7).to(torch.bfloat16)
    check(model, lambda g: (randn(5, 64, g=g, dtype=torch.bfloat16),))


# ---------------------------------------------------------------- convolution

CONVS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "stride2": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 11, 9)),
    "dilation": (lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=2), (1, 3, 10, 12)),
    "groups": (lambda: nn.Conv2d(6, 4, 3, groups=2), (2, 6, 7, 8)),
    "depthwise": (lambda: nn.Conv2d(4, 8, 3, groups=4, padding=1, bias=False), (1, 4, 9, 9)),
    "conv1d": (lambda: nn.Conv1d(3, 5, 4, stride=2, padding=1), (2, 3, 17)),
    "transposed": (
        lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        (2, 4, 5, 6),
    ),
}


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_variants(native_build, name):
    factory, shape = CONVS[name]
    check(_randomize(factory(), 8), lambda g: (randn(*shape, g=g),), atol=1e-4, rtol=1e-4)


# -------------------------------------------------------------------- pooling


def test_max_pool_ceil_mode(native_build):
    check(
        Lambda(
            lambda x: (F.max_pool2d(x, 3, 2, ceil_mode=True), F.max_pool2d(x, 2, ceil_mode=True))
        ),
        lambda g: (randn(2, 3, 8, 11, g=g),),
    )


def test_avg_pool_padding(native_build):
    def fn(x):
        return (
            F.avg_pool2d(x, 3, 2, padding=1),
            F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False),
            F.avg_pool2d(x, 2, 2, padding=1, ceil_mode=True),
            F.max_pool2d(x, 3, 1, padding=1),
        )

    check(Lambda(fn), lambda g: (randn(2, 3, 9, 10, g=g),))


def test_adaptive_pool_non_divisible(native_build):
    # 7 -> 3 and 10 -> 4: overlapping windows of different sizes.
    def fn(x):
        return F.adaptive_avg_pool2d(x, (3, 4)), F.adaptive_avg_pool2d(x[0], (5, 3))

    check(Lambda(fn), lambda g: (randn(2, 3, 7, 10, g=g),))


def test_adaptive_max_pool_non_divisible(native_build):
    def inputs(g):
        x = randn(2, 3, 7, 10, g=g)
        x[1, 2, 4, 4] = float("nan")  # NaN wins its windows, as in eager
        return (x,)

    def fn(x):
        values, indices = F.adaptive_max_pool2d(x, (3, 4), return_indices=True)
        return values, indices, F.adaptive_max_pool2d(x[0], (5, 3))

    check(Lambda(fn), inputs)


# ------------------------------------------------------------------ attention


def _qkv(g: torch.Generator) -> tuple[torch.Tensor, ...]:
    return randn(2, 3, 6, 8, g=g), randn(2, 3, 9, 8, g=g), randn(2, 3, 9, 8, g=g)


def test_attention_float_mask(native_build):
    check(
        Lambda(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
        lambda g: (*_qkv(g), randn(6, 9, g=g)),
    )


def test_attention_bool_mask(native_build):
    def inputs(g):
        mask = torch.rand(2, 1, 6, 9, generator=g) > 0.4
        mask[..., 0] = True  # every query sees at least one key
        return (*_qkv(g), mask)

    check(Lambda(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)), inputs)


# ---------------------------------------------------------------- activations


def test_gelu_tanh(native_build):
    check(
        Lambda(lambda x: (F.gelu(x, approximate="tanh"), F.gelu(x))),
        lambda g: (randn(4, 37, g=g) * 3,),
    )


def test_silu(native_build):
    check(nn.SiLU(), lambda g: (randn(5, 19, g=g) * 4,))


def test_pow_negative_base_fractional_exponent(native_build):
    def fn(x, e):
        # Negative bases to fractional powers are NaN, as in eager.
        return x.pow(0.5), x**1.5, x.pow(3), x.pow(-2.0), torch.pow(x, e), torch.pow(2.0, e)

    check(Lambda(fn), lambda g: (randn(4, 9, g=g), uniform(4, 9, low=-2.5, high=2.5, g=g)))


def test_nan_inf_propagation(native_build):
    def inputs(g):
        x = randn(4, 6, g=g)
        x[0, 1] = float("nan")
        x[1, 2] = float("inf")
        x[2, 3] = float("-inf")
        x[3, 0] = float("nan")
        x[3, 4] = float("inf")
        return x, randn(4, 6, g=g)

    def fn(x, y):
        return (
            torch.maximum(x, y),
            torch.minimum(x, y),
            x.amax(1),
            x.amin(0),
            torch.relu(x),
            x.clamp(-0.5, 0.5),
            x.max(1).values,
            x.sum(1),
        )

    check(Lambda(fn), inputs)


def test_int32_add_wraps(native_build):
    def inputs(g):
        big = torch.randint(2**31 - 100, 2**31 - 1, (5,), generator=g, dtype=torch.int32)
        return big, torch.randint(100, 1000, (5,), generator=g, dtype=torch.int32)

    check(Lambda(lambda a, b: (a + b, -a - b, a * 3)), inputs)


# ------------------------------------------------------ out-of-range indices


def _expect_out_of_range(model: nn.Module, good: Inputs, *bad: Inputs) -> None:
    """Each of |bad| makes eager raise and the compiled model return
    OUT_OF_RANGE; the process survives and the same loaded model still runs
    |good| correctly afterwards."""
    from aot import runtime

    path = AOTCRunnerUtil.compile(model.eval(), good)
    fn = AOTCRunnerUtil.load(path)
    for inputs in bad:
        with pytest.raises((IndexError, RuntimeError)):
            model(*inputs)
        with pytest.raises(runtime.AotcError) as info:
            fn(*inputs)
        assert info.value.code == "OUT_OF_RANGE", info.value
    with torch.no_grad():
        expected = model(*good)
    assert_close_to_eager(fn(*good), expected, None, None)


def test_embedding_index_out_of_range_is_refused_at_run_time(native_build):
    # Too large, and negative: eager's embedding does not wrap negative ids.
    model = _randomize(nn.Embedding(10, 4), 9)
    good = (torch.tensor([[1, 9, 0], [3, 3, 7]]),)
    too_large = (torch.tensor([[1, 10, 0], [3, 3, 7]]),)
    negative = (torch.tensor([[1, 2, 0], [3, -1, 7]]),)
    _expect_out_of_range(model, good, too_large, negative)


def test_gather_index_out_of_range_is_refused_at_run_time(native_build):
    model = Lambda(lambda x, i: torch.gather(x, 1, i))
    x = randn(3, 5, g=_gen(0))
    good = (x, torch.tensor([[0, 4], [2, 2], [1, 3]]))
    too_large = (x, torch.tensor([[0, 4], [2, 5], [1, 3]]))
    negative = (x, torch.tensor([[0, 4], [2, 2], [-1, 3]]))
    _expect_out_of_range(model, good, too_large, negative)


def test_index_select_negative_index_is_refused_at_run_time(native_build):
    model = Lambda(lambda x, i: torch.index_select(x, 0, i))
    x = randn(6, 5, g=_gen(0))
    _expect_out_of_range(model, (x, torch.tensor([0, 5, 2])), (x, torch.tensor([0, -1, 2])))


def test_advanced_indexing_wraps_negative_indices(native_build):
    # x[i] (aten.index), unlike the three above, wraps negatives as eager does.
    check(
        Lambda(lambda x, i: x[i]),
        lambda g: (randn(6, 5, g=g), torch.randint(-6, 6, (4,), generator=g)),
    )
