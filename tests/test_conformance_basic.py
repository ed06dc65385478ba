"""Basic conformance: small models in the style of PyTorch's test_aot_inductor.py,
one behaviour each, compiled with aotc and run through the C++ runtime against
eager PyTorch.

Every model is compiled once from its example inputs and then run on those and on
fresh random (non-zero) inputs of the same shapes; outputs keep the model's own
structure (tuples, lists, dicts) and dtype (int, bool, float32, bfloat16).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from aot.testing import AOTCRunnerUtil, assert_close_to_eager
from tests.devices import run_compiled

Inputs = tuple[Any, ...]


@pytest.fixture(autouse=True)
def _seed():
    """Fresh but reproducible inputs: each test draws from its own seeded stream."""
    torch.manual_seed(20240611)


def _randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normal values pushed away from zero (|v| >= 0.1), so no test passes on zeros."""
    t = torch.randn(shape)
    t = torch.where(t.abs() < 0.1, torch.sign(t + 1e-3) * 0.1, t)
    return t.to(dtype)


def _check(
    model: torch.nn.Module,
    make_inputs: Callable[[], Inputs],
    fresh: int = 2,
    stage: Callable[[Inputs], Inputs] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> list[Any]:
    """Compiles |model| from make_inputs() and compares the runtime's outputs with
    eager's on those inputs and on |fresh| further make_inputs() draws.

    |stage| maps each inputs tuple to what is passed at run time (to both eager and
    the compiled callable): non-contiguous or channels-last layouts of the same values.
    Returns the compiled outputs.
    """
    model = model.eval()
    trials = [make_inputs() for _ in range(1 + fresh)]
    if stage is not None:
        trials = [stage(inputs) for inputs in trials]
    with torch.no_grad():
        expected = [model(*inputs) for inputs in trials]
        actual = run_compiled(model, trials, example_inputs=trials[0])
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        try:
            assert_close_to_eager(a, e, atol, rtol)
        except AssertionError as exc:
            raise AssertionError(f"inputs #{k}: {exc}") from None
    return actual


# ---------------------------------------------------------------------------
# Buffers, constants, parameters


class PersistentBuffer(torch.nn.Module):
    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.register_buffer("scale", _randn(8, dtype=dtype))

    def forward(self, x):
        return x * self.scale + 1


class NonPersistentBuffer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", _randn(4, 8), persistent=False)

    def forward(self, x):
        return torch.tanh(x - self.offset)


class TensorAttribute(torch.nn.Module):
    """A plain tensor attribute: torch.export lifts it as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.table = _randn(8)

    def forward(self, x):
        return x / (self.table.abs() + 1)


class TiedLinear(torch.nn.Module):
    """Two Linear modules sharing one weight parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 8)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_persistent_buffer(native_build):
    _check(PersistentBuffer(), lambda: (_randn(4, 8),))


def test_persistent_buffer_bf16(native_build):
    _check(PersistentBuffer(torch.bfloat16), lambda: (_randn(4, 8, dtype=torch.bfloat16),))


def test_non_persistent_buffer(native_build):
    _check(NonPersistentBuffer(), lambda: (_randn(4, 8),))


def test_tensor_attribute_is_a_lifted_constant(native_build):
    _check(TensorAttribute(), lambda: (_randn(3, 8),))


def test_tied_parameters(native_build):
    _check(TiedLinear(), lambda: (_randn(5, 8),))


def test_tied_parameters_bf16(native_build):
    _check(TiedLinear().to(torch.bfloat16), lambda: (_randn(5, 8, dtype=torch.bfloat16),))


# ---------------------------------------------------------------------------
# Output structure and aliasing


class MultipleOutputs(torch.nn.Module):
    def forward(self, x):
        return x + 1, x * 2, x.sum(dim=1)


class NestedOutputs(torch.nn.Module):
    def forward(self, x, y):
        return (x + y, [x * y, (x - y).mean(dim=0)]), y.exp()


class DictOutputs(torch.nn.Module):
    def forward(self, x):
        return {"sin": x.sin(), "parts": [x.cos(), x.abs().sum()]}


class ReturnInput(torch.nn.Module):
    def forward(self, x):
        return x, x * 3


class ReturnInputView(torch.nn.Module):
    def forward(self, x):
        return x.view(-1), x.t(), x.sum()


class OutputsAliasEachOther(torch.nn.Module):
    def forward(self, x):
        y = x * 2 + 1
        return y, y


class TransposeOutput(torch.nn.Module):
    def forward(self, x):
        y = x.sigmoid()
        return y.t()


class SliceOutput(torch.nn.Module):
    def forward(self, x):
        y = x * x
        return y[1:3, ::2], y


class ExpandOutput(torch.nn.Module):
    def forward(self, x):
        y = x.sum(dim=0, keepdim=True)
        return y.expand(4, 8)


def test_multiple_outputs(native_build):
    out = _check(MultipleOutputs(), lambda: (_randn(4, 8),))
    assert isinstance(out[0], tuple) and len(out[0]) == 3


def test_nested_outputs(native_build):
    out = _check(NestedOutputs(), lambda: (_randn(4, 8), _randn(4, 8)))
    assert isinstance(out[0][0], tuple) and isinstance(out[0][0][1], list)


def test_dict_outputs(native_build):
    out = _check(DictOutputs(), lambda: (_randn(4, 8),))
    assert isinstance(out[0], dict) and isinstance(out[0]["parts"], list)


def test_output_is_an_input(native_build):
    _check(ReturnInput(), lambda: (_randn(4, 8),))


def test_output_is_a_view_of_an_input(native_build):
    out = _check(ReturnInputView(), lambda: (_randn(4, 8),))
    assert out[0][1].shape == (8, 4)


def test_outputs_alias_each_other(native_build):
    out = _check(OutputsAliasEachOther(), lambda: (_randn(4, 8),))
    assert out[0][0].data_ptr() != out[0][1].data_ptr()  # returned as two buffers


def test_transpose_of_computed_value_as_output(native_build):
    _check(TransposeOutput(), lambda: (_randn(4, 8),))


def test_slice_of_computed_value_as_output(native_build):
    _check(SliceOutput(), lambda: (_randn(4, 8),))


def test_expand_of_computed_value_as_output(native_build):
    _check(ExpandOutput(), lambda: (_randn(4, 8),))


# ---------------------------------------------------------------------------
# In-place ops and index_put in forward


class AddInPlace(torch.nn.Module):
    def forward(self, x):
        y = x * 2
        y.add_(1)
        return y * x


class ReluInPlace(torch.nn.Module):
    def forward(self, x):
        y = x - 0.5
        torch.relu_(y)
        return y + x


class MulInPlaceOnClone(torch.nn.Module):
    def forward(self, x):
        y = x.clone()
        y.mul_(x)
        return y, x


class IndexPutTensorIndex(torch.nn.Module):
    def forward(self, x, idx, v):
        y = x.clone()
        y[idx] = v
        return y


class IndexPutColumn(torch.nn.Module):
    def forward(self, x):
        y = x + 1
        y[:, 2] = 0
        return y


def test_add_in_place_on_intermediate(native_build):
    _check(AddInPlace(), lambda: (_randn(4, 8),))


def test_relu_in_place(native_build):
    _check(ReluInPlace(), lambda: (_randn(4, 8),))


def test_mul_in_place_on_clone(native_build):
    _check(MulInPlaceOnClone(), lambda: (_randn(4, 8),))


def test_index_put_with_index_tensor(native_build):
    def inputs():
        idx = torch.randperm(6)[:3]  # distinct rows: no duplicate-write ambiguity
        return _randn(6, 8), idx, _randn(3, 8)

    _check(IndexPutTensorIndex(), inputs)


def test_index_put_column_of_zeros(native_build):
    _check(IndexPutColumn(), lambda: (_randn(4, 8),))


# ---------------------------------------------------------------------------
# Input layouts


class RowScale(torch.nn.Module):
    def forward(self, x, w):
        return x * w + x.sum(dim=1, keepdim=True)


class SmallConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_transposed_input(native_build):
    # Compiled for a contiguous [4, 8] x; at run time x is the transpose of [8, 4].
    def stage(inputs):
        x, w = inputs
        x = x.t().contiguous().t()
        assert not x.is_contiguous()
        return x, w

    _check(RowScale(), lambda: (_randn(4, 8), _randn(8)), stage=stage)


def test_strided_slice_input(native_build):
    def stage(inputs):
        x, w = inputs
        wide = _randn(4, 16)
        wide[:, ::2] = x
        x = wide[:, ::2]
        assert not x.is_contiguous()
        return x, w

    _check(RowScale(), lambda: (_randn(4, 8), _randn(8)), stage=stage)


def test_channels_last_input(native_build):
    def stage(inputs):
        (x,) = inputs
        return (x.contiguous(memory_format=torch.channels_last),)

    _check(SmallConv(), lambda: (_randn(2, 3, 6, 6),), stage=stage, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------
# Zero-size dims and 0-d tensors


class ZeroRows(torch.nn.Module):
    def forward(self, x, y):
        return x * 2 + 1, y.sum()


class ZeroColumnIntermediate(torch.nn.Module):
    def forward(self, x):
        empty = x[:, :0]  # [4, 0]
        return torch.cat([empty * 3, x], dim=1), empty.sum(dim=1)


class Scalars(torch.nn.Module):
    def forward(self, x, s):
        return (x * s).sum(), s * 2 + 1


def test_zero_size_input(native_build):
    out = _check(ZeroRows(), lambda: (_randn(0, 8), _randn(3)))
    assert out[0][0].shape == (0, 8)


def test_zero_size_intermediate(native_build):
    _check(ZeroColumnIntermediate(), lambda: (_randn(4, 8),))


def test_zero_dim_tensors(native_build):
    out = _check(Scalars(), lambda: (_randn(4, 8), _randn()))
    assert out[0][0].shape == () and out[0][1].shape == ()


# ---------------------------------------------------------------------------
# Integer and bool results, integer arithmetic, type promotion


class Argmax(torch.nn.Module):
    def forward(self, x):
        return x.argmax(dim=1), x.argmin()


class Comparisons(torch.nn.Module):
    def forward(self, x, y):
        return x > y, (x <= 0) & (y > 0), x == x


class ToInt32(torch.nn.Module):
    def forward(self, x):
        return (x * 10).to(torch.int32), (x > 0).to(torch.int64).sum(dim=1)


class IntegerArithmetic(torch.nn.Module):
    def forward(self, a, b):
        return a // b, a % b, torch.remainder(a, 3), a * b - a, torch.floor_divide(a, -4)


class WhereMaskedFill(torch.nn.Module):
    def forward(self, x, y):
        return torch.where(x > 0, x, y), x.masked_fill(y < 0, -1.5)


class Clamp(torch.nn.Module):
    def forward(self, x):
        return x.clamp(-0.5, 0.5), x.clamp(min=0.2), torch.clamp(x, max=-0.1)


class IntPlusFloat(torch.nn.Module):
    def forward(self, i, x):
        return i + x, i * 0.5, i / 2


class BoolMaskPromotion(torch.nn.Module):
    def forward(self, x):
        mask = x > 0
        return x * mask, mask + 1, mask.sum()


def _ints(*shape: int, low: int = -20, high: int = 20, exclude_zero: bool = False):
    t = torch.randint(low, high, shape)
    if exclude_zero:
        t = torch.where(t == 0, torch.ones_like(t), t)
    return t


def test_int_outputs_from_argmax(native_build):
    out = _check(Argmax(), lambda: (_randn(5, 8),))
    assert out[0][0].dtype == torch.int64


def test_bool_outputs_from_comparisons(native_build):
    out = _check(Comparisons(), lambda: (_randn(4, 8), _randn(4, 8)))
    assert all(t.dtype == torch.bool for t in out[0])


def test_cast_to_int32(native_build):
    out = _check(ToInt32(), lambda: (_randn(4, 8),))
    assert out[0][0].dtype == torch.int32


def test_integer_floor_division_and_remainder_with_negatives(native_build):
    _check(
        IntegerArithmetic(), lambda: (_ints(6, 8), _ints(6, 8, low=-7, high=7, exclude_zero=True))
    )


def test_where_and_masked_fill(native_build):
    _check(WhereMaskedFill(), lambda: (_randn(4, 8), _randn(4, 8)))


def test_clamp(native_build):
    _check(Clamp(), lambda: (_randn(4, 8),))


def test_int_plus_float_promotion(native_build):
    _check(IntPlusFloat(), lambda: (_ints(4, 8), _randn(4, 8)))


def test_bool_mask_promotion(native_build):
    _check(BoolMaskPromotion(), lambda: (_randn(4, 8),))


# ---------------------------------------------------------------------------
# Tensor creation and shape ops


class ArangeFull(torch.nn.Module):
    def forward(self, x):
        positions = torch.arange(x.shape[1], dtype=torch.float32)
        filled = torch.full((x.shape[0], 1), 2.5)
        return x * positions + filled, torch.arange(0, 10, 3)


class CatStack(torch.nn.Module):
    def forward(self, x, y):
        return torch.cat([x, y * 2], dim=1), torch.stack([x, y], dim=0)


class SplitChunk(torch.nn.Module):
    def forward(self, x):
        a, b = torch.split(x, [3, 5], dim=1)
        c, d = x.chunk(2, dim=0)
        return a.sum(dim=1), b * 2, c - d


class Pad(torch.nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 2, 0, 1), value=0.5), F.pad(x, (2, 2), mode="constant")


class ExpandRepeat(torch.nn.Module):
    def forward(self, x, row):
        return x + row.expand(4, 8), row.repeat(3, 2), x.repeat(1, 2) * 2


class Embedding(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(16, 8)

    def forward(self, idx):
        return self.emb(idx).sum(dim=1)


def test_arange_and_full_in_forward(native_build):
    _check(ArangeFull(), lambda: (_randn(4, 8),))


def test_cat_and_stack(native_build):
    _check(CatStack(), lambda: (_randn(4, 8), _randn(4, 8)))


def test_cat_and_stack_bf16(native_build):
    bf16 = torch.bfloat16
    _check(CatStack(), lambda: (_randn(4, 8, dtype=bf16), _randn(4, 8, dtype=bf16)))


def test_split_and_chunk(native_build):
    _check(SplitChunk(), lambda: (_randn(4, 8),))


def test_pad(native_build):
    _check(Pad(), lambda: (_randn(4, 8),))


def test_pad_bf16(native_build):
    _check(Pad(), lambda: (_randn(4, 8, dtype=torch.bfloat16),))


def test_expand_and_repeat(native_build):
    _check(ExpandRepeat(), lambda: (_randn(4, 8), _randn(1, 8)))


def test_embedding(native_build):
    _check(Embedding(), lambda: (torch.randint(0, 16, (3, 5)),))


def test_embedding_bf16(native_build):
    _check(Embedding().to(torch.bfloat16), lambda: (torch.randint(0, 16, (3, 5)),))


# ---------------------------------------------------------------------------
# Buffer mutation: state persists across runs of one loaded package


class Counter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("total", torch.zeros(8))

    def forward(self, x):
        self.count += 1
        self.total.add_(x.sum(dim=0))
        return x * self.count, self.total.clone()


def test_buffer_mutation_persists_across_runs(native_build):
    """The package starts from the module's state at export (compiling must not
    run a forward into it) and each run through one loaded package advances it,
    as each eager call does."""
    import subprocess

    runs = [(_randn(4, 8),) for _ in range(3)]
    model = Counter().eval()
    path = AOTCRunnerUtil.compile(model, runs[0])
    try:
        assert int(model.count) == 0 and not model.total.any()  # the caller's module untouched
        compiled = AOTCRunnerUtil.load(path)
        for k, inputs in enumerate(runs):
            with torch.no_grad():
                expected = model(*inputs)
            try:
                assert_close_to_eager(compiled(*inputs), expected, None, None)
            except AssertionError as exc:
                raise AssertionError(f"run #{k}: {exc}") from None
        assert int(model.count) == 3
        # The stored samples (eager outputs of a first call) match a fresh load's first run.
        check = subprocess.run(
            [str(native_build.binary("aotc-run")), path], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


class MutateInput(torch.nn.Module):
    def forward(self, x, y):
        x.add_(y)
        return x * 2


def test_input_mutation_is_written_back(native_build):
    model = MutateInput().eval()
    x, y = _randn(4, 8), _randn(4, 8)
    path = AOTCRunnerUtil.compile(model, (x.clone(), y))
    try:
        compiled = AOTCRunnerUtil.load(path)
        for _ in range(2):
            x, y = _randn(4, 8), _randn(4, 8)
            x_eager, x_compiled = x.clone(), x.clone()
            with torch.no_grad():
                expected = model(x_eager, y)
            actual = compiled(x_compiled, y)
            assert_close_to_eager(actual, expected, None, None)
            torch.testing.assert_close(x_compiled, x_eager)  # the caller's x was updated
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


# ---------------------------------------------------------------------------
# More edge cases


class FloatRemainderFmod(torch.nn.Module):
    def forward(self, x, y):
        return torch.remainder(x, y), torch.fmod(x, y), torch.floor_divide(x, y)


class Int32Arithmetic(torch.nn.Module):
    def forward(self, a, b):
        return a // b, a % b, (a * 3 + b).to(torch.int32), a.sum()


class ReshapeOfTranspose(torch.nn.Module):
    def forward(self, x):
        y = x.exp()
        return y.transpose(0, 1).reshape(-1), y.permute(1, 0).contiguous().view(2, 16)


class AnyAllScalarCompare(torch.nn.Module):
    def forward(self, x):
        return (x > 1).any(), (x > -5).all(dim=1), x.sum() > 0


class MixedIntBool(torch.nn.Module):
    def forward(self, i, x):
        mask = x > 0
        return i + mask, i * mask.to(torch.int32), torch.where(mask, i, -i)


def test_float_remainder_fmod_floor_divide(native_build):
    def inputs():
        return _randn(4, 8) * 5, _randn(4, 8)

    _check(FloatRemainderFmod(), inputs, atol=1e-5, rtol=1e-5)


def test_int32_arithmetic(native_build):
    def inputs():
        a = _ints(4, 8, low=-100, high=100).to(torch.int32)
        return a, _ints(4, 8, low=-9, high=9, exclude_zero=True).to(torch.int32)

    _check(Int32Arithmetic(), inputs)


def test_reshape_of_transposed_intermediate(native_build):
    _check(ReshapeOfTranspose(), lambda: (_randn(4, 8),))


def test_any_all_and_scalar_comparison(native_build):
    _check(AnyAllScalarCompare(), lambda: (_randn(4, 8),))


def test_int_and_bool_mixed(native_build):
    _check(MixedIntBool(), lambda: (_ints(4, 8).to(torch.int32), _randn(4, 8)))


class SliceOfInput(torch.nn.Module):
    def forward(self, x):
        return x[1:], x[:, 2:5], x.expand(3, 4, 8)


class ReturnConstants(torch.nn.Module):
    """A buffer and a parameter returned as they are: outputs are fresh copies."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("b", _randn(8))
        self.w = torch.nn.Parameter(_randn(3))

    def forward(self, x):
        return self.b, x + self.b, self.w


class EmptyReductions(torch.nn.Module):
    def forward(self, x):
        empty = x[:, :0]
        return empty.mean(dim=1), empty.sum(), empty.prod(dim=1)


class NegativeIndices(torch.nn.Module):
    def forward(self, x, i):
        return x[i], x[:, i], x.index_select(0, i % 4)


class IndexPutAccumulate(torch.nn.Module):
    def forward(self, x, i, v):
        y = x.clone()
        y.index_put_((i,), v, accumulate=True)
        return y


class NanPropagation(torch.nn.Module):
    def forward(self, x, y):
        return torch.maximum(x, y), torch.minimum(x, y), x.amax(dim=1), x.argmax(dim=1)


class Bitwise(torch.nn.Module):
    def forward(self, a, b):
        return a & b, a | b, a ^ b, ~a, (a > 0) & (b > 0), ~(a > b)


def test_slices_and_expand_of_input_as_outputs(native_build):
    _check(SliceOfInput(), lambda: (_randn(4, 8),))


def test_buffer_and_parameter_as_outputs(native_build):
    _check(ReturnConstants(), lambda: (_randn(4, 8),))


def test_same_tensor_passed_twice(native_build):
    def inputs():
        x = _randn(4, 8)
        return x, x

    _check(CatStack(), inputs)


def test_empty_reductions(native_build):
    _check(EmptyReductions(), lambda: (_randn(4, 8),))


def test_negative_indices(native_build):
    _check(NegativeIndices(), lambda: (_randn(4, 8), torch.randint(-4, 4, (5,))))


def test_index_put_accumulate_with_duplicates(native_build):
    def inputs():
        return _randn(4, 8), torch.tensor([0, 2, 0, 3, 2, 0]), _randn(6, 8)

    _check(IndexPutAccumulate(), inputs, atol=1e-5, rtol=1e-5)


def test_nan_propagation(native_build):
    nan = float("nan")

    def inputs():
        x, y = _randn(3, 4), _randn(3, 4)
        x[0, 1], y[1, 2], x[2, 0], y[2, 0] = nan, nan, nan, nan
        return x, y

    _check(NanPropagation(), inputs)


def test_bitwise_and_logical_ops(native_build):
    _check(Bitwise(), lambda: (_ints(4, 8), _ints(4, 8, low=0, high=100)))
