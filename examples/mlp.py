"""A small multilayer perceptron: Linear, GELU, LayerNorm, Linear."""

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, d_in: int = 64, d_hidden: int = 256, d_out: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.act(self.fc1(x))))


def get_model() -> nn.Module:
    torch.manual_seed(0)
    return MLP().eval()


def get_example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(8, 64),)
