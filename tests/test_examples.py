"""The example models (examples/*.py), exported with `aotc export`'s driver in
float32 and bfloat16, run through the C++ runtime on fresh random inputs shaped
like the examples (and on the examples themselves), compared with eager.

End to end: every compiler stage, the build and the runtime.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from aot.export import export_model
from aot.options import ExportOptions

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("mlp", "cnn", "transformer", "gpt")
DTYPES = ("float32", "bfloat16")
FRESH_INPUTS = 3


def _load_example(name: str) -> ModuleType:
    path = REPO_ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"aotc_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fresh_like(example: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A new random tensor shaped like |example|: normal floats; integers in the
    example's range (token ids stay valid)."""
    if example.dtype.is_floating_point:
        return torch.randn(example.shape, generator=generator).to(example.dtype)
    if example.dtype == torch.bool:
        return torch.randint(0, 2, example.shape, generator=generator).bool()
    low, high = int(example.min()), int(example.max())
    return torch.randint(low, high + 1, example.shape, generator=generator, dtype=example.dtype)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: str, what: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    if dtype == "float32":
        torch.testing.assert_close(
            actual, expected, atol=1e-4, rtol=1e-4, msg=lambda m: f"{what}: {m}"
        )
        return
    # bfloat16 keeps 8 bits of mantissa and compiled kernels round at other
    # points than eager: about 2e-2 of the output's scale.
    a, e = actual.float(), expected.float()
    scale = max(1.0, float(e.abs().max()))
    torch.testing.assert_close(a, e, atol=2e-2 * scale, rtol=2e-2, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example(native_build, tmp_path, name, dtype):
    from aot import runtime

    options = ExportOptions(dtype=dtype)
    package = export_model(
        REPO_ROOT / "examples" / f"{name}.py", tmp_path / f"{name}.pt2", options, quiet=True
    )
    example = _load_example(name)
    model = example.get_model()
    examples = tuple(example.get_example_inputs())
    torch_dtype = getattr(torch, dtype)
    model = model.to(torch_dtype)
    examples = tuple(t.to(torch_dtype) if t.is_floating_point() else t for t in examples)

    generator = torch.Generator().manual_seed(1234)
    trials = [examples] + [
        tuple(_fresh_like(t, generator) for t in examples) for _ in range(FRESH_INPUTS)
    ]
    with runtime.load(package) as compiled:
        for k, inputs in enumerate(trials):
            with torch.no_grad():
                expected = model(*inputs)
            expected = expected if isinstance(expected, tuple | list) else (expected,)
            actual = compiled(*inputs)
            assert len(actual) == len(expected)
            for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
                what = f"{name} {dtype} inputs #{k} output {i}"
                _assert_close(a, e, dtype, what)


def test_bad_token_id_is_a_runtime_error_not_a_crash(native_build, tmp_path):
    """An embedding index past the table becomes OUT_OF_RANGE naming the kernel's
    debug handle; the loaded model keeps working afterwards."""
    from aot import runtime

    package = export_model(
        REPO_ROOT / "examples" / "gpt.py", tmp_path / "gpt.pt2", ExportOptions(), quiet=True
    )
    example = _load_example("gpt")
    model = example.get_model()
    (idx,) = example.get_example_inputs()
    with runtime.load(package) as compiled:
        bad = idx.clone()
        bad[1, 5] = 128  # vocab is 128: one past the end
        with pytest.raises(runtime.AotcError) as error:
            compiled(bad)
        assert error.value.code == "OUT_OF_RANGE"
        assert "index 128 out of range [0, 128)" in str(error.value)
        assert "kernel0:0" in str(error.value)  # the debug handle of the embedding kernel
        (logits,) = compiled(idx)
        with torch.no_grad():
            torch.testing.assert_close(logits, model(idx), atol=1e-4, rtol=1e-4)
