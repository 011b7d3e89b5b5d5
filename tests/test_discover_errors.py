"""Models discovery cannot trace fail with one clear line, never a traceback from inside Torch-Pruning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import autoprune
from autoprune.exceptions import DiscoveryError


def test_a_model_torch_pruning_cannot_trace_raises_a_discovery_error():
    """ShuffleNet v2's channel shuffle, three times in a row: Torch-Pruning 1.6's index mapping divides by zero."""

    class Shuffle(nn.Module):
        def forward(self, x):
            b, c, h, w = x.shape
            return x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)

    class Half(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c // 2, c // 2, 1)

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            return torch.cat([a, self.conv(b)], 1)

    model = nn.Sequential(nn.Conv2d(3, 16, 3), *[m for _ in range(3) for m in (Half(16), Shuffle())],
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    with pytest.raises(DiscoveryError, match=r"^discover: Torch-Pruning fails to trace the dependency graph of Sequential: "
                                             r"\w+Error: .*; this model cannot be searched$"):
        autoprune.discover(model, torch.zeros(1, 3, 16, 16))


def test_a_forward_that_fails_on_the_example_input_says_so():
    model = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 2))
    with pytest.raises(DiscoveryError, match=r"^discover: Sequential's forward fails on example_input while Torch-Pruning "
                                             r"traces it: RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        autoprune.discover(model, torch.zeros(1, 5))
