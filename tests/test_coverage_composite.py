"""Composite ops through the real runtime (aot/lowering/composite.py and
composite_bins.py): *_copy views, diagonal/as_strided/masked scatters,
addmv/addbmm/bilinear, cdist/pdist/dist, segment_reduce, histc/histogram,
nonzero_static and embedding_bag.

Each test compiles one model grouping many cases (a compile per case would
cost a build each), runs it through the C++ runtime (AOTCRunnerUtil) on the
example inputs and on a fresh random set of the same shapes, and compares
with eager. Index-like inputs (segment lengths, bag offsets) are drawn per
seed too, so a kernel that baked an example value in shows up.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from two_trials import Inputs, check


def randn(*shape: int, g: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(dtype)


def partition(total: int, parts: int, g: torch.Generator) -> torch.Tensor:
    """|parts| non-negative int64 lengths summing to |total| (some empty)."""
    cuts = torch.randint(0, total + 1, (parts - 1,), generator=g).sort().values
    bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([total])])
    return bounds.diff()


def test_view_copies_and_scatters() -> None:
    aten = torch.ops.aten

    def fn(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, src: torch.Tensor) -> Any:
        return (
            aten.view_copy(x, [6, 4]),
            aten.permute_copy(x, [2, 0, 1]),
            aten.narrow_copy(x, -1, -3, 2),
            *aten.unbind_copy(x, 1),
            aten.as_strided_copy(x, [2, 3], [1, 5], 2),
            aten.t_copy(y),
            torch.diagonal_scatter(y, src[:4], 1),
            torch.diagonal_scatter(x, src[:4].reshape(2, 2) * 2, -1, 1, 2),
            torch.as_strided_scatter(y, src[:6].reshape(2, 3), (2, 3), (1, 5), 1),
            torch.masked_scatter(y, mask, src.reshape(5, 5)),
            torch.masked_scatter(y[0], mask[:4], src[:20]),  # self broadcast to the mask
        )

    def inputs(g: torch.Generator) -> Inputs:
        mask = torch.rand(5, 5, generator=g) > 0.5
        return randn(2, 3, 4, g=g), randn(5, 5, g=g), mask, randn(25, g=g)

    check(fn, inputs)


def test_products_and_distances() -> None:
    def fn(
        v: torch.Tensor, m: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor, w: torch.Tensor
    ) -> Any:
        a, c = m[:, :3], b1.reshape(-1, 4)[:5]
        return (
            torch.addmv(v[:5], m, v, beta=0.5, alpha=2.0),
            torch.addmv(v[:1], m, v),
            torch.addbmm(m[:, :3], b1, b2, beta=0.3, alpha=1.5),
            F.bilinear(a, c, w),
            F.bilinear(m.reshape(2, 5, 4)[..., :3], b1[:2, :, :1].expand(2, 5, 4), w),
            *(torch.cdist(a, c[:, 1:], p=p) for p in (0.0, 1.0, 2.0, 1.5, float("inf"))),
            torch.cdist(b1, b1[:1]),  # batch broadcast
            F.pdist(m),
            F.pdist(m, p=float("inf")),
            torch.dist(m, v, 3),
            torch.dist(m.bfloat16(), v.bfloat16()),
        )

    def inputs(g: torch.Generator) -> Inputs:
        return (
            randn(8, g=g),
            randn(5, 8, g=g),
            randn(3, 5, 4, g=g),
            randn(3, 4, 3, g=g),
            randn(6, 3, 4, g=g),
        )

    check(fn, inputs)


def test_segment_reduce_and_histograms() -> None:
    def fn(x: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, e: torch.Tensor) -> Any:
        flat = x.flatten()
        return (
            torch.segment_reduce(x, "sum", lengths=lengths, axis=0, initial=1.0),
            torch.segment_reduce(x, "mean", lengths=lengths, axis=0),
            torch.segment_reduce(x.bfloat16(), "max", lengths=lengths, axis=0),
            torch.segment_reduce(x.t(), "min", offsets=offsets, axis=1, initial=0.5),
            torch.segment_reduce(x.t(), "prod", offsets=offsets, axis=1),
            torch.histc(x, bins=7),
            torch.histc(x, bins=5, min=-1, max=1),
            torch.histc(x.bfloat16(), bins=4),
            *torch.histogram(flat, bins=6),
            *torch.histogram(flat, bins=3, range=(-1.0, 2.0), weight=flat.abs(), density=True),
            *torch.histogram(flat, bins=e.sort().values),
            torch.nonzero_static(x * (x > 0.3), size=20),
            torch.nonzero_static(flat[:10] > 0, size=4, fill_value=-7),
        )

    def inputs(g: torch.Generator) -> Inputs:
        x = randn(12, 3, g=g)
        lengths = partition(12, 5, g)
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), partition(12, 4, g).cumsum(0)])
        offsets = starts.expand(3, 5).contiguous()
        return x, lengths, offsets, randn(5, g=g)

    check(fn, inputs)


def test_embedding_bag() -> None:
    def fn(w: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, psw: torch.Tensor) -> Any:
        starts = offsets[:4]
        return (
            F.embedding_bag(idx, w, starts, mode="sum", per_sample_weights=psw),
            F.embedding_bag(idx, w, starts, mode="mean", padding_idx=2),
            F.embedding_bag(idx, w, starts, mode="max"),
            F.embedding_bag(idx, w, offsets, mode="mean", include_last_offset=True),
            F.embedding_bag(idx.reshape(3, 4), w.bfloat16(), mode="sum"),
        )

    def inputs(g: torch.Generator) -> Inputs:
        idx = torch.randint(0, 6, (12,), generator=g)
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), partition(12, 4, g).cumsum(0)])
        return randn(6, 5, g=g), idx, offsets, randn(12, g=g)

    check(fn, inputs)
