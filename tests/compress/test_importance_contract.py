"""The contract every registered importance criterion passes, on real Torch-Pruning groups.

Parametrized over :data:`autoprune.compress.importance.IMPORTANCE` itself, so a criterion
registered before collection (a user's included) is checked with the built-ins.
"""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from autoprune.compress.importance import IMPORTANCE, make_importance
from autoprune.compress.prune import prune_channels
from autoprune.space import discover


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Flatten(), nn.Linear(12 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 3),
    )
    with torch.no_grad():  # BN scales that differ, so that bn_scale has something to rank
        for bn in (model[1], model[4]):
            bn.weight.copy_(torch.rand(bn.num_features) + 0.1)
    return model.eval()


def _group(model: nn.Module, root: nn.Module, x: torch.Tensor):
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    pruner = dg.get_pruner_of_module(root)
    n = pruner.get_out_channels(root)
    return dg.get_pruning_group(root, pruner.prune_out_channels, list(range(n))), n


@pytest.mark.parametrize("name", IMPORTANCE.names())
def test_criterion_scores_every_channel_of_a_group(name):
    x = torch.randn(2, 1, 8, 8)
    model = _model()
    criterion = make_importance(name)
    for root, required in ((model[0], True), (model[3], True), (model[7], False)):
        group, n = _group(model, root, x)
        with torch.no_grad():
            scores = criterion(group)
            again = criterion(group)
        if scores is None:  # allowed only where there is nothing to score (bn_scale on a layer without BN)
            assert not required, f"{name} gave no scores for a conv group with BatchNorm"
            continue
        assert isinstance(scores, torch.Tensor) and scores.shape == (n,), f"{name}: shape {tuple(scores.shape)}, want ({n},)"
        assert torch.isfinite(scores).all()
        assert torch.equal(scores, again), f"{name} scored the same group differently twice"


@pytest.mark.parametrize("name", IMPORTANCE.names())
def test_pruning_with_the_criterion_gives_a_working_smaller_model(name):
    x = torch.randn(2, 1, 8, 8)
    model = _model()
    space = discover(model, x, max_ratio=0.75, ratio_step=0.25, round_to=1)
    done = prune_channels(model, {"0": 0.5, "3": 0.25}, space, x, importance=name)
    assert done == {"0": (8, 4), "3": (12, 9)}
    assert model[0].out_channels == 4 and model[3].in_channels == 4 and model[4].num_features == 9
    assert model(x).shape == (2, 3)


def test_unknown_criterion_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown importance criterion 'taylorish' \(known: \['bn_scale', .*'magnitude'"):
        make_importance("taylorish")
