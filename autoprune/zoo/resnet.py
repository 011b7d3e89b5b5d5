"""ResNet with basic and bottleneck blocks and 1x1 projection shortcuts.

The residual adds couple every block's last conv with its shortcut (and, within a stage,
with all the other blocks): torch-pruning's dependency graph puts them in one group.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "scaled", "RESNET18_STAGES", "RESNET50_STAGES"]

# The stages of torchvision's ResNet-18 and ResNet-50 (block, width, blocks, stride). With
# ``stem=64, in_channels=3`` and a 56x56 input they run at their ImageNet resolution (what
# follows the 7x7 stride-2 stem and max-pool of a 224x224 image); the stem here is a 3x3 conv.
RESNET18_STAGES = (("basic", 64, 2, 1), ("basic", 128, 2, 2), ("basic", 256, 2, 2), ("basic", 512, 2, 2))
RESNET50_STAGES = (("bottleneck", 64, 3, 1), ("bottleneck", 128, 4, 2), ("bottleneck", 256, 6, 2), ("bottleneck", 512, 3, 2))


def scaled(channels: int, width_mult: float, divisor: int = 8) -> int:
    """``channels * width_mult`` rounded to a multiple of ``divisor`` (never below it), as MobileNet's ``_make_divisible``."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    return max(divisor, int(channels * width_mult + divisor / 2) // divisor * divisor)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    """Two 3x3 convs; a 1x1 projection shortcut when the shape changes."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, cout, 3)
        self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, BatchNorm after each; a 1x1 projection shortcut when the shape changes.

    Args:
        cin: Input channels.
        width: Channels of the 3x3.
        stride: Stride of the 3x3.
        groups: Groups of the 3x3 (ResNeXt's cardinality; 1 in ResNet).
        cout: Output channels (default ``width x expansion``, ResNet's).
    """

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, *, groups: int = 1, cout: int | None = None) -> None:
        super().__init__()
        cout = cout or width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride, groups=groups)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: stem, stages of ``blocks`` (basic or bottleneck), global pooling, linear head.

    Args:
        stages: ``(block, width, n_blocks, stride)`` per stage; ``block`` is ``"basic"`` or ``"bottleneck"``.
        stem: Stem conv output channels.
        width_mult: Multiplies the stem and every stage width (rounded to multiples of 8), as
            torchvision's width options do: 1 is the small test-size model, 4 has ResNet-18's
            64-512 channel range.
        in_channels: Input channels.
        num_classes: Logits produced by the head.
    """

    BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}

    def __init__(
        self,
        stages: tuple[tuple[str, int, int, int], ...] = (("basic", 32, 2, 1), ("basic", 64, 1, 2), ("bottleneck", 32, 2, 2)),
        stem: int = 32,
        width_mult: float = 1.0,
        in_channels: int = 1,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        stem = scaled(stem, width_mult)
        stages = tuple((kind, scaled(width, width_mult), n, stride) for kind, width, n, stride in stages)
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem, 3), nn.ReLU(inplace=True))
        c = stem
        for i, (kind, width, n, stride) in enumerate(stages):
            blocks = []
            for j in range(n):
                block = self.BLOCKS[kind](c, width, stride if j == 0 else 1)
                blocks.append(block)
                c = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_stages = len(stages)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))
