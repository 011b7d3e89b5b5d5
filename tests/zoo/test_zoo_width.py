"""width_mult: the zoo's ResNet and MobileNetV2 at deploy-size widths (used by the pruning-speedup benchmark)."""

from __future__ import annotations

import pytest
from torch import nn

from autoprune import compress, discover, zoo
from autoprune.zoo.resnet import scaled


def _widths(model: nn.Module) -> list[int]:
    return sorted({m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)})


@pytest.mark.parametrize("channels, mult, expected", [(32, 1.0, 32), (32, 4.0, 128), (24, 0.5, 16), (16, 0.25, 8), (20, 1.0, 24)])
def test_scaled_rounds_to_multiples_of_eight(channels, mult, expected):
    assert scaled(channels, mult) == expected


def test_scaled_refuses_a_non_positive_multiplier():
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        scaled(32, 0)


@pytest.mark.parametrize("arch, lo, hi", [("resnet", 128, 512), ("mobilenetv2", 64, 1536)])
def test_width_mult_four_builds_deploy_size_widths_that_prune(arch, lo, hi):
    model, x = zoo.build(arch, width_mult=4), zoo.example_input(arch)
    assert _widths(model)[0] == lo and _widths(model)[-1] == hi
    assert _widths(zoo.build(arch)) == _widths(zoo.build(arch, width_mult=1.0))  # 1 is the default model
    assert model(x).shape == (1, 10)
    space = discover(model, x, max_ratio=0.75)
    half = compress(model, space.plan_from_params(space.params_for(0.5, 32)), x, space=space)
    assert half(x).shape == (1, 10)
    assert _widths(half)[-1] < hi
