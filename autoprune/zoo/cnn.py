"""Plain CNN and MLP: stacks without skips, the simplest channel groups."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PlainCNN", "MLP"]


class PlainCNN(nn.Module):
    """Conv-BN-ReLU blocks with a max-pool after every second block, global pooling, a linear head.

    Args:
        widths: Output channels of each conv block.
        in_channels: Input channels.
        num_classes: Logits produced by the head.
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 64, 128), in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


class MLP(nn.Module):
    """Flatten, then Linear-ReLU hidden layers and a linear head."""

    def __init__(self, in_features: int = 64, hidden: tuple[int, ...] = (512, 512, 256), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        c = in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
