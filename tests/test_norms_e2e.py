"""Normalisation statistics through the whole compiler and the C++ runtime on
inputs with a large mean, where a naive sum of squares would lose the variance
(Welford keeps it)."""

from __future__ import annotations

import torch
from torch import nn

from aot.testing import AOTCRunnerUtil


class Stats(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(512)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        var, mean = torch.var_mean(x, dim=-1, correction=1)
        return self.norm(x), var, mean, x.std(dim=0)


def test_large_mean_statistics_match_eager(native_build):
    generator = torch.Generator().manual_seed(7)
    model = Stats().eval()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5, generator=generator)
        model.norm.bias.uniform_(-0.5, 0.5, generator=generator)
    x = 1e4 + torch.randn(6, 512, generator=generator)
    actual = AOTCRunnerUtil.run(model, (x,))
    with torch.no_grad():
        expected = model(x)
    reference = model.double()(x.double())  # what exact arithmetic gives
    for a, e, r in zip(actual, expected, reference, strict=True):
        # float32 near 1e4 has an ulp of ~1e-3: eager and aotc round differently.
        torch.testing.assert_close(a, e, atol=1e-2, rtol=1e-2)
        # About as accurate as eager against float64 (float32 accumulation of
        # the statistics would be ~1e4 times worse on var and std).
        assert (a.double() - r).abs().max() <= 4 * (e.double() - r).abs().max() + 1e-6
    # The variance really is ~1, not swamped by the mean of 1e4.
    torch.testing.assert_close(actual[1], torch.ones(6), atol=0.2, rtol=0)
