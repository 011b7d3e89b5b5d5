"""Grouped convolutions: ResNeXt bottlenecks and RegNet (Y) blocks, as torchvision writes them.

A grouped 3x3 convolution mixes channels only within each of its ``groups`` slices, so its
input and output channels are pruned group-consistently: every slice loses the same
positions and the layer keeps its group count (see :class:`autoprune.space.ChannelGroup`).
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import Bottleneck, _conv_bn

__all__ = ["ResNeXtBlock", "RegNetBlock", "ResNeXt", "RegNet"]


class ResNeXtBlock(Bottleneck):
    """ResNet's bottleneck with a grouped 3x3 (``cardinality`` groups) and its own output width.

    Args:
        cin: Input channels.
        width: Channels of the grouped 3x3 (a multiple of ``cardinality``).
        cout: Output channels.
        cardinality: Groups of the 3x3 convolution.
        stride: Stride of the 3x3; a 1x1 projection shortcut when the shape changes.
    """

    def __init__(self, cin: int, width: int, cout: int, cardinality: int, stride: int = 1) -> None:
        super().__init__(cin, width, stride, groups=cardinality, cout=cout)


class SqueezeExcitation(nn.Module):
    """Channel gates from pooled features (torchvision's ``SqueezeExcitation``: two 1x1 convs, ReLU, sigmoid)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class RegNetBlock(nn.Module):
    """RegNetY's block: 1x1, grouped 3x3 of ``group_width`` channels per group, squeeze-excitation, 1x1; residual add.

    Args:
        cin: Input channels.
        cout: Output (and inner) channels, a multiple of ``group_width``.
        group_width: Channels per group of the 3x3 convolution.
        stride: Stride of the 3x3; a 1x1 projection shortcut when the shape changes.
        se_ratio: Squeeze width as a share of ``cin`` (torchvision: 0.25).
    """

    def __init__(self, cin: int, cout: int, group_width: int, stride: int = 1, se_ratio: float = 0.25) -> None:
        super().__init__()
        self.a, self.a_bn = _conv_bn(cin, cout, 1)
        self.b, self.b_bn = _conv_bn(cout, cout, 3, stride, groups=cout // group_width)
        self.se = SqueezeExcitation(cout, max(1, int(round(se_ratio * cin))))
        self.c, self.c_bn = _conv_bn(cout, cout, 1)
        self.proj = nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a_bn(self.a(x)))
        y = self.se(torch.relu(self.b_bn(self.b(y))))
        return torch.relu(self.c_bn(self.c(y)) + self.proj(x))


class ResNeXt(nn.Module):
    """A small ResNeXt: stem, stages of :class:`ResNeXtBlock`, global pooling, linear head.

    Args:
        stages: ``(width of the grouped 3x3, output channels, blocks, stride)`` per stage.
        cardinality: Groups of every grouped 3x3 (torchvision's resnext50_32x4d: 32).
        stem: Stem conv output channels.
        in_channels: Input channels.
        num_classes: Logits produced by the head.
    """

    def __init__(self, stages: tuple[tuple[int, int, int, int], ...] = ((64, 64, 2, 1), (128, 96, 1, 2)), cardinality: int = 8,
                 stem: int = 32, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem, 3), nn.ReLU(inplace=True))
        blocks, c = [], stem
        for width, cout, n, stride in stages:
            for j in range(n):
                blocks.append(ResNeXtBlock(c, width, cout, cardinality, stride if j == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class RegNet(nn.Module):
    """A small RegNetY: stem, stages of :class:`RegNetBlock`, global pooling, linear head.

    Args:
        stages: ``(channels, blocks, stride)`` per stage.
        group_width: Channels per group of every grouped 3x3 (torchvision's regnet_y_400mf: 8).
        stem: Stem conv output channels.
        in_channels: Input channels.
        num_classes: Logits produced by the head.
    """

    def __init__(self, stages: tuple[tuple[int, int, int], ...] = ((48, 2, 1), (96, 1, 2)), group_width: int = 8,
                 stem: int = 32, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem, 3), nn.ReLU(inplace=True))
        blocks, c = [], stem
        for cout, n, stride in stages:
            for j in range(n):
                blocks.append(RegNetBlock(c, cout, group_width, stride if j == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))
