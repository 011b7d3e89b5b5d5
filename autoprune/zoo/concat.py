"""Concatenation skips: a DenseNet-style dense block net and a small U-Net classifier.

``torch.cat`` makes the next conv's input channels the union of several producers'
outputs; the dependency graph maps each producer's channels to its slice of the input.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DenseNet", "UNet"]


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(torch.relu(self.bn(x)))], dim=1)


class DenseNet(nn.Module):
    """Stem, dense blocks (each layer concatenates ``growth`` new channels), 1x1 transitions with pooling, linear head."""

    def __init__(self, stem: int = 32, growth: int = 24, layers: tuple[int, ...] = (3, 3), in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c = stem
        for i, n in enumerate(layers):
            for _ in range(n):
                blocks.append(_DenseLayer(c, growth))
                c += growth
            if i < len(layers) - 1:
                blocks += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.relu(self.norm(x)).mean(dim=(2, 3)))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Two-level U-Net (encoder, bottleneck, decoder with concatenated skips, nearest upsampling), pooled into a classifier."""

    def __init__(self, width: int = 32, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2 = _double_conv(in_channels, w), _double_conv(w, 2 * w)
        self.mid = _double_conv(2 * w, 4 * w)
        self.pool, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=2, mode="nearest")
        self.dec2 = _double_conv(4 * w + 2 * w, 2 * w)
        self.dec1 = _double_conv(2 * w + w, w)
        self.fc = nn.Linear(w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], dim=1))
        return self.fc(d1.mean(dim=(2, 3)))
