"""One nn.TransformerEncoderLayer in eval mode."""

import torch
from torch import nn


def get_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(
        d_model=64, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True
    ).eval()


def get_example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, 16, 64),)
