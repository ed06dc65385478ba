"""Fused losses through the real runtime: F.linear_cross_entropy's chunked
ops (torch_nn._linear_cross_entropy_batch_chunked and its no-reduction
variant, [Note: linear cross-entropy] in aot/lowering/cross_entropy.py).

Each test compiles one model that groups several variants (reductions, class
weights, bias, ignored rows), runs it through the C++ runtime on two random
input sets and compares with eager.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aot.testing import check_model_with_multiple_inputs

pytest.importorskip("torch.nn.modules.linear_cross_entropy")

N, FEATURES, CLASSES = 9, 6, 5


class LinearCrossEntropies(nn.Module):
    """mean / sum / none, with and without bias, class weights and ignore_index."""

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor,
        cw: torch.Tensor,
        t: torch.Tensor,
        t_ignored: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        opts = nn.LinearCrossEntropyOptions(batch_chunk_size=2, allow_retain_graph=True)
        lce = F.linear_cross_entropy
        return (
            lce(x, w, t, options=opts),
            lce(x, w, t, linear_bias=b, weight=cw, reduction="sum", options=opts),
            # ignore_index out of [0, C): ignored rows read class 0 and weigh 0.
            lce(x, w, t_ignored, weight=cw, ignore_index=-100, options=opts),
            # ignore_index in range: rows of class 1 drop out of the mean.
            lce(x, w, t, linear_bias=b, ignore_index=1, options=opts),
            lce(x, w, t_ignored, linear_bias=b, reduction="none", ignore_index=-100, options=opts),
            lce(x, w, t, weight=cw, reduction="none", options=opts),
        )


def _inputs(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, FEATURES, generator=g).to(dtype)
    w = torch.randn(CLASSES, FEATURES, generator=g).to(dtype)
    b = torch.randn(CLASSES, generator=g).to(dtype)
    cw = (torch.rand(CLASSES, generator=g) + 0.5).to(dtype)
    t = torch.randint(0, CLASSES, (N,), generator=g)
    t_ignored = t.clone()
    t_ignored[::3] = -100
    return x, w, b, cw, t, t_ignored


def test_exports_the_chunked_ops() -> None:
    ep = torch.export.export(LinearCrossEntropies(), _inputs(0, torch.float32))
    names = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "torch_nn._linear_cross_entropy_batch_chunked.default" in names
    assert "torch_nn._linear_cross_entropy_batch_chunked_no_reduction.default" in names


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_cross_entropy(dtype: torch.dtype) -> None:
    trials = [_inputs(seed, dtype) for seed in (1, 2)]
    # bf16: eager rounds its chunked accumulator to bf16 per chunk; aotc rounds once.
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
    check_model_with_multiple_inputs(None, LinearCrossEntropies().eval(), trials, **tol)
