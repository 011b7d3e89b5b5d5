"""The zoo's ResNet and MobileNetV2 at wider widths (width_mult) and in their ImageNet configurations (used by the pruning-speedup benchmark)."""

from __future__ import annotations

import pytest
from torch import nn

from autoprune import discover, zoo
from autoprune.compress import prune
import torch

from autoprune.space import layer_macs
from autoprune.zoo.mobilenet import IMAGENET_STAGES, MobileNetV2
from autoprune.zoo.resnet import RESNET18_STAGES, RESNET50_STAGES, ResNet, scaled


def _widths(model: nn.Module) -> list[int]:
    return sorted({m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)})


@pytest.mark.parametrize("channels, mult, expected", [(32, 1.0, 32), (32, 4.0, 128), (24, 0.5, 16), (16, 0.25, 8), (20, 1.0, 24)])
def test_scaled_rounds_to_multiples_of_eight(channels, mult, expected):
    assert scaled(channels, mult) == expected


def test_scaled_refuses_a_non_positive_multiplier():
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        scaled(32, 0)


@pytest.mark.parametrize("arch, lo, hi", [("resnet", 128, 512), ("mobilenetv2", 64, 1536)])
def test_width_mult_four_builds_wider_models_that_prune(arch, lo, hi):
    model, x = zoo.build(arch, width_mult=4), zoo.example_input(arch)
    assert _widths(model)[0] == lo and _widths(model)[-1] == hi
    assert _widths(zoo.build(arch)) == _widths(zoo.build(arch, width_mult=1.0))  # 1 is the default model
    assert model(x).shape == (1, 10)
    space = discover(model, x, max_ratio=0.75)
    half = prune(model, space.plan_from_params(space.params_for(0.5, 32)), x, space=space)
    assert half(x).shape == (1, 10)
    assert _widths(half)[-1] < hi


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_imagenet_mobilenetv2_is_torchvisions():
    model = MobileNetV2(IMAGENET_STAGES, stem=32, last=1280, stem_stride=2, in_channels=3, num_classes=1000).eval()
    assert _params(model) == 3_504_872  # torchvision.models.mobilenet_v2(): 3,504,872 parameters
    assert round(sum(layer_macs(model, torch.randn(1, 3, 224, 224)).values()) / 1e6) == 301  # ~300 MMACs


@pytest.mark.parametrize("stages, torchvision_params", [(RESNET18_STAGES, 11_689_512), (RESNET50_STAGES, 25_557_032)])
def test_imagenet_resnet_stages_are_torchvisions_but_for_the_stem(stages, torchvision_params):
    model = ResNet(stages, stem=64, in_channels=3, num_classes=1000)
    assert _params(model) == torchvision_params - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64  # a 3x3 stem conv instead of 7x7
    assert model(torch.randn(1, 3, 56, 56)).shape == (1, 1000)
