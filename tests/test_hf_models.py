"""Hugging Face transformers models (GPT-2, BERT, LLaMA, ViT), built from small
configs with seeded random weights (never from_pretrained: no hub), compiled
with aotc, run through the C++ runtime on the example inputs and on fresh random
ones, compared with eager: float32 (atol=rtol=1e-4) for all four, bfloat16 for
GPT-2 and LLaMA, and float32 with dynamic batch and sequence length (batch only
for ViT).

The models are called the HF way, input_ids and attention_mask (pixel_values for
ViT) by keyword: AOTCRunnerUtil passes inputs positionally, and HF's second
positional parameter is not always attention_mask (GPT-2's is past_key_values),
so a small wrapper module maps positions to keywords. Outputs stay HF
ModelOutputs: transformers registers them as pytree nodes, torch.export records
their spec and AOTCRunnerUtil.load unflattens the runtime's outputs into the same
class. Caches are off (use_cache=False); attention is "sdpa", which aotc lowers
to its own attention kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aot.testing import assert_close_to_eager  # noqa: E402
from tests.devices import run_compiled  # noqa: E402

VOCAB = 128
BATCH, SEQ = 2, 16
IMAGE, PATCH = 32, 8
FRESH_INPUTS = 2


class _Keywords(torch.nn.Module):
    """Calls |model| with its positional inputs passed as the keywords |names|."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.model(**dict(zip(self.names, inputs, strict=True)))


def _gpt2() -> torch.nn.Module:
    config = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, bos_token_id=0,
        eos_token_id=0, use_cache=False, attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def _bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        vocab_size=VOCAB, max_position_embeddings=64, use_cache=False,
        attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.BertModel(config)  # last_hidden_state and pooler_output


def _llama() -> torch.nn.Module:
    # RMSNorm, rotary embeddings, SwiGLU MLP, grouped-query attention (2 KV heads
    # shared by 4 query heads).
    config = transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=VOCAB, max_position_embeddings=64,
        bos_token_id=0, eos_token_id=0, use_cache=False, attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config)


def _vit() -> torch.nn.Module:
    config = transformers.ViTConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        image_size=IMAGE, patch_size=PATCH, num_channels=3, attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.ViTModel(config)


def _text_inputs(generator: torch.Generator, batch: int, seq: int) -> tuple[torch.Tensor, ...]:
    """Random token ids and a right-padded attention mask (every row keeps at
    least one token; row 0 always pads so masking is exercised)."""
    input_ids = torch.randint(0, VOCAB, (batch, seq), generator=generator)
    lengths = torch.randint(1, seq + 1, (batch,), generator=generator)
    lengths[0] = max(1, min(int(lengths[0]), seq - 3))
    attention_mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    return input_ids, attention_mask


def _image_inputs(generator: torch.Generator, batch: int, seq: int) -> tuple[torch.Tensor, ...]:
    del seq  # the number of patches follows from the fixed image size
    return (torch.randn(batch, 3, IMAGE, IMAGE, generator=generator),)


TEXT = ("input_ids", "attention_mask")
MODELS: dict[str, tuple[Callable[[], torch.nn.Module], tuple[str, ...], Callable]] = {
    "gpt2": (_gpt2, TEXT, _text_inputs),
    "bert": (_bert, TEXT, _text_inputs),
    "llama": (_llama, TEXT, _text_inputs),
    "vit": (_vit, ("pixel_values",), _image_inputs),
}


def _check(name: str, dtype: torch.dtype, dynamic: bool = False) -> None:
    """Compiles model |name| once and compares it with eager on its example
    inputs and FRESH_INPUTS fresh ones; |dynamic|: batch and sequence length
    are dynamic dims and the fresh inputs take other sizes."""
    build, names, make_inputs = MODELS[name]
    torch.manual_seed(0)  # the random weights
    model = _Keywords(build(), names).to(dtype).eval()
    generator = torch.Generator().manual_seed(1234)

    def inputs(batch: int, seq: int) -> tuple[torch.Tensor, ...]:
        made = make_inputs(generator, batch, seq)
        return tuple(t.to(dtype) if t.is_floating_point() else t for t in made)

    dynamic_shapes = None
    if dynamic:
        # (batch, seq) of the export example, then fresh sizes either side.
        sizes = [(BATCH, SEQ), (3, 23), (1, 5)]
        batch_dim = torch.export.Dim("batch", min=1, max=8)
        seq_dim = torch.export.Dim("seq", min=2, max=64)
        dims = {0: batch_dim, 1: seq_dim} if names == TEXT else {0: batch_dim}
        dynamic_shapes = {"inputs": tuple(dims for _ in names)}  # _Keywords's *inputs
    else:
        sizes = [(BATCH, SEQ)] * (1 + FRESH_INPUTS)
    trials = [inputs(*size) for size in sizes]  # trials[0] is the export example
    actuals = run_compiled(model, trials, dynamic_shapes=dynamic_shapes)
    for i, (args, actual) in enumerate(zip(trials, actuals, strict=True)):
        with torch.no_grad():
            expected = model(*args)
        assert type(actual) is type(expected), f"{name} trial {i}"
        if dtype == torch.float32:
            assert_close_to_eager(actual, expected, 1e-4, 1e-4)
        else:
            # bfloat16 keeps 8 bits of mantissa and compiled kernels round at
            # other points than eager: about 2e-2 of each output's scale.
            for a, e in zip(actual.to_tuple(), expected.to_tuple(), strict=True):
                scale = max(1.0, float(e.float().abs().max()))
                torch.testing.assert_close(
                    a.float(), e.float(), atol=2e-2 * scale, rtol=2e-2,
                    msg=lambda m, i=i: f"{name} trial {i}: {m}",
                )  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
def test_hf_model_float32(native_build, name):
    _check(name, torch.float32)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_hf_model_bfloat16(native_build, name):
    _check(name, torch.bfloat16)


@pytest.mark.parametrize("name", list(MODELS))
def test_hf_model_dynamic_shapes(native_build, name):
    if name == "llama" and tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 13):
        # torch 2.11's export adds a guard on LLaMA's rotary cache
        # (min(16*seq, 32*seq) == 16*seq) and refuses the dynamic seq dim.
        pytest.skip(f"torch {torch.__version__} cannot export LLaMA with a dynamic sequence")
    _check(name, torch.float32, dynamic=True)
