"""A keyword-spotting style Conv1d model: (B, bins, frames) features, temporal convolutions."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KWSNet"]


class KWSNet(nn.Module):
    """Conv1d-BN-ReLU blocks over time (a depthwise-separable pair in the middle), global pooling, linear head.

    Args:
        bins: Input feature bins (channels of the first Conv1d).
        widths: Output channels of the temporal conv blocks.
        num_classes: Logits produced by the head.
    """

    def __init__(self, bins: int = 16, widths: tuple[int, ...] = (64, 128, 128), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = bins
        for i, w in enumerate(widths):
            k = 5 if i == 0 else 3
            layers += [nn.Conv1d(c, w, k, padding=k // 2, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [  # depthwise-separable block
            nn.Conv1d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True),
            nn.Conv1d(c, c, 1, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True),
        ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=2))
