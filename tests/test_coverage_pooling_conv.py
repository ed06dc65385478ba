"""N-d pooling, 3-D convolution and max pooling's gradient through the whole
compiler and the C++ runtime, against eager on fresh random inputs.

The kernels (aotc_cpu_pool.h, conv in aotc_cpu_kernels.h) serve 1- to 3-D
ops from one window loop, so each model mixes 3-D ops with the 2-D and 1-D
ones they share code with, and several shapes, to compile once per dtype.
bfloat16 is compared with eager on float32 copies rounded to bfloat16 (eager
rounds a transposed convolution's intermediates to bfloat16; aotc computes
in float32 and rounds once).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aot.runtime import AotcError
from aot.testing import AOTCRunnerUtil, assert_close_to_eager, check_model

aten = torch.ops.aten


class Pools(nn.Module):
    """Max, average and adaptive pooling in 3-D (batched and unbatched), 2-D
    and 1-D: padding, dilation, ceil_mode, count_include_pad, negative
    divisor_override, indices. Eager has no bfloat16 avg_pool3d (and the
    packager runs eager for the package's sample outputs): |avg_pool3d|
    leaves it out; its kernel is avg_pool2d's."""

    def __init__(self, avg_pool3d: bool = True) -> None:
        super().__init__()
        self.with_avg_pool3d = avg_pool3d

    def forward(self, x3: torch.Tensor, u3: torch.Tensor, x2: torch.Tensor) -> tuple:
        m3, i3 = F.max_pool3d(
            x3, (3, 2, 3), (2, 1, 2), (1, 1, 0), (1, 2, 1), ceil_mode=True, return_indices=True
        )
        return (
            m3,
            i3,
            F.max_pool3d(u3, 2),  # unbatched, values only
            *self.avg_pool3d(x3, u3),
            F.adaptive_avg_pool3d(x3, (3, 5, 4)),
            *F.adaptive_max_pool3d(u3, (4, 3, 5), return_indices=True),
            *F.max_pool2d(x2, 3, 2, 1, 2, ceil_mode=True, return_indices=True),
            F.avg_pool2d(x2, (3, 2), (2, 1), (1, 1), True, False),
            F.avg_pool2d(x2, 2, divisor_override=-2),
            F.adaptive_avg_pool2d(x2, (4, 5)),
            *F.adaptive_max_pool2d(x2, (5, 3), return_indices=True),
            F.max_pool1d(x2.flatten(2), 4, 3, 1),
        )

    def avg_pool3d(self, x3: torch.Tensor, u3: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.with_avg_pool3d:
            return ()
        return (
            F.avg_pool3d(x3, (2, 3, 4), (1, 2, 2), (0, 1, 2), True, False),
            F.avg_pool3d(u3, (2, 2, 3), divisor_override=-3),
        )


class Convs(nn.Module):
    """conv3d (grouped, strided, dilated, padded; batched and unbatched),
    conv_transpose3d on its output, and the 2-D and 1-D forms."""

    def __init__(self) -> None:
        super().__init__()
        self.c3 = nn.Conv3d(4, 6, (3, 2, 3), (2, 1, 1), (1, 0, 2), (1, 2, 1), groups=2)
        self.t3 = nn.ConvTranspose3d(6, 4, (3, 3, 2), (2, 1, 2), (1, 0, 1), (1, 0, 1), 2, True)
        self.t3d = nn.ConvTranspose3d(4, 3, 2, 1, dilation=(1, 2, 2), bias=False)
        self.c2 = nn.Conv2d(3, 8, 3, padding=1)
        self.t2 = nn.ConvTranspose2d(8, 5, 3, stride=2, padding=1, output_padding=1)
        self.c1 = nn.Conv1d(3, 4, 5, stride=2, padding=2, dilation=2)

    def forward(self, x3: torch.Tensor, u3: torch.Tensor, x2: torch.Tensor) -> tuple:
        y3 = self.c3(x3)
        return (
            y3,
            self.t3(y3),
            self.t3d(u3),
            self.c3(u3),
            self.t2(self.c2(x2)),
            self.c1(x2[:, :, 0]),
        )


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


def _inputs(dtype: torch.dtype, *shapes: Sequence[int]) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(sum(map(sum, shapes)))
    return tuple(torch.randn(*s, generator=generator).to(dtype) for s in shapes)


def _check(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """check_model in float32; bfloat16 against eager in float32, rounded."""
    model = model.eval()
    if inputs[0].dtype == torch.float32:
        check_model(None, model, inputs)
        return
    actual = AOTCRunnerUtil.run(model.to(inputs[0].dtype), inputs)
    with torch.no_grad():
        expected = model.float()(*(t.float() for t in inputs))
    expected = tuple(e.bfloat16() if e.is_floating_point() else e for e in expected)
    assert_close_to_eager(actual, expected, None, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pooling_matches_eager(native_build, dtype: torch.dtype) -> None:
    _check(
        Pools(dtype == torch.float32), _inputs(dtype, (2, 3, 7, 8, 9), (3, 6, 5, 7), (2, 3, 11, 13))
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_convolution_matches_eager(native_build, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    _check(Convs(), _inputs(dtype, (2, 4, 7, 6, 8), (4, 5, 6, 7), (2, 3, 9, 10)))


def test_max_pool_backward_matches_eager(native_build) -> None:
    x2, x3 = _inputs(torch.float32, (3, 9, 10), (2, 3, 4, 5, 6))
    g2, g3 = _inputs(torch.float32, (3, 5, 6), (2, 3, 3, 4, 5))
    check_model(None, PoolGradients().eval(), (x2, g2, x3, g3))


class Scatter(nn.Module):
    """The gradient with the indices as an input, to feed it a bad one."""

    def forward(self, g: torch.Tensor, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return aten.max_pool2d_with_indices_backward(
            g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, indices
        )


def test_max_pool_backward_refuses_bad_indices(native_build) -> None:
    g, x = _inputs(torch.float32, (1, 2, 2, 2), (1, 2, 4, 4))
    _, indices = F.max_pool2d(x, 2, return_indices=True)
    path = AOTCRunnerUtil.compile(Scatter().eval(), (g, x, indices))
    run = AOTCRunnerUtil.load(path)
    shutil.rmtree(Path(path).parent)  # the runtime keeps the package mapped
    torch.testing.assert_close(run(g, x, indices), Scatter()(g, x, indices))
    indices[0, 1, 1, 0] = 16  # the plane has 16 elements
    with pytest.raises(AotcError, match="index 16 out of range"):
        run(g, x, indices)
