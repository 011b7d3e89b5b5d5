"""MobileNetV2-style inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 linear projection.

The depthwise conv ties its channels to the expand conv's (pruned together, in one group);
blocks with an identity skip tie their projections to the stage input.
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import scaled

__all__ = ["InvertedResidual", "MobileNetV2", "IMAGENET_STAGES"]

# torchvision's MobileNetV2 (``inverted_residual_setting``): with ``stem=32, last=1280,
# stem_stride=2, in_channels=3, num_classes=1000`` and a 224x224 input this is MobileNetV2 1.0
# as deployed (300 MMACs).
IMAGENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """Expand (1x1) - depthwise (3x3) - project (1x1), identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_skip = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_skip else y


class MobileNetV2(nn.Module):
    """A small MobileNetV2: stem, inverted residual stages ``(expand, cout, n, stride)``, 1x1 head conv, linear classifier.

    ``width_mult`` scales the stem and stage widths (multiples of 8) and, above 1, the head
    conv, as torchvision's ``width_mult``; 1 is the small test-size model. The defaults are
    the small test-size model; :data:`IMAGENET_STAGES` with ``stem_stride=2`` is the real one.
    """

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int], ...] = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 1)),
        stem: int = 32,
        last: int = 256,
        width_mult: float = 1.0,
        in_channels: int = 1,
        num_classes: int = 10,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        # as torchvision's MobileNetV2: every width scales, the head conv only when widening
        stem, last = scaled(stem, width_mult), scaled(last, max(1.0, width_mult))
        stages = tuple((t, scaled(cout, width_mult), n, s) for t, cout, n, s in stages)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6(inplace=True)]
        c = stem
        for t, cout, n, s in stages:
            for j in range(n):
                layers.append(InvertedResidual(c, cout, s if j == 0 else 1, t))
                c = cout
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))
