"""Pruning never returns a broken model: it runs the result and refuses one that fails or changes its output shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import autoprune
from autoprune.compress import BuildSettings
from autoprune.compress.check import forward_failure, output_shapes
from autoprune.exceptions import UnsupportedLayerError
from autoprune.plan import LayerPlan, Plan

from broken_models import FixedView, OneFixedView

warnings.filterwarnings("ignore", category=UserWarning)

SETTINGS = BuildSettings(bn_batches=1, calibration_samples=8)


class TwoFixedViews(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.a, self.va = nn.Conv2d(16, 32, 3, padding=1), FixedView(32)
        self.b, self.vb = nn.Conv2d(16, 24, 3, padding=1), FixedView(24)
        self.head = nn.Linear(56, 4)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        return self.head(torch.cat([self.va(torch.relu(self.a(y))), self.vb(torch.relu(self.b(y)))], 1))


class DetachedFeatures(nn.Module):
    """Also returns pooled features outside autograd, so nothing marks their conv as an output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.head = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1), nn.Linear(32, 4)

    def forward(self, x):
        pooled = torch.relu(self.c2(torch.relu(self.c1(x)))).mean((2, 3))
        return {"logits": self.head(pooled), "features": pooled.detach()}


X7 = torch.randn(1, 3, 7, 7)  # 7x7: a fixed view of fewer channels cannot divide the elements


def _half(space) -> Plan:
    return Plan({g.name: LayerPlan(ratio=0.5) for g in space.groups})


def _data(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 7, 7)).astype(np.float32)


def test_compress_prune_refuses_a_model_it_would_break_naming_the_group_the_module_and_the_fix():
    model = OneFixedView().eval()
    space = autoprune.discover(model, X7)
    with pytest.raises(UnsupportedLayerError, match=r"channel group 'c2' breaks the model: its forward fails in module "
                       r"'view' \(FixedView\): RuntimeError: shape .*search: exclude: \[c2\].*exclude=\['c2'\]") as err:
        autoprune.compress.prune(model, _half(space), X7, space=space)
    assert err.value.modules == ("c2",)  # c1 prunes fine on its own: it is not named
    assert "\n" not in str(err.value)


def test_build_raises_unsupported_layer_not_a_candidate_failure():
    model = OneFixedView().eval()
    space = autoprune.discover(model, X7)
    with pytest.raises(UnsupportedLayerError, match=r"channel group 'c2'"):
        autoprune.build(model, _half(space), _data(), X7, SETTINGS, space=space)


def test_the_suggested_exclude_builds_a_working_model_that_still_prunes_the_rest():
    model = OneFixedView().eval()
    with pytest.raises(UnsupportedLayerError) as err:
        autoprune.compress.prune(model, _half(autoprune.discover(model, X7)), X7)
    space = autoprune.discover(model, X7, exclude=list(err.value.modules))
    artifact = autoprune.build(model, _half(space), _data(), X7, SETTINGS, space=space)
    assert artifact.model.c1.out_channels == 16 and artifact.model.c2.out_channels == 32
    assert artifact.model(X7).shape == (1, 4)


def test_several_breaking_groups_are_named_in_one_error_each_with_its_module():
    model = TwoFixedViews().eval()
    space = autoprune.discover(model, X7)
    with pytest.raises(UnsupportedLayerError, match=r"channel group 'a': .*module 'va'.*channel group 'b': .*module 'vb'"
                       r".*search: exclude: \[a, b\]") as err:
        autoprune.build(model, _half(space), _data(), X7, SETTINGS, space=space)
    assert err.value.modules == ("a", "b")  # the stem is pruned too, and is fine


def test_an_output_that_changes_shape_is_refused():
    model = DetachedFeatures().eval()
    x = torch.randn(1, 3, 8, 8)
    space = autoprune.discover(model, x)
    with pytest.raises(UnsupportedLayerError, match=r"channel group 'c2'.*'features': \(1, 16\).*'features': \(1, 32\)") as err:
        autoprune.compress.prune(model, _half(space), x, space=space)
    assert err.value.modules == ("c2",)


def test_low_level_in_place_pruning_checks_too():
    model = OneFixedView().eval()
    space = autoprune.discover(model, X7)
    from autoprune.compress.prune import prune_channels

    with pytest.raises(UnsupportedLayerError, match=r"channel groups 'c1', 'c2' together breaks the model"):
        prune_channels(model, {"c1": 0.5, "c2": 0.5}, space, X7)


def test_the_check_runs_in_eval_mode_and_restores_every_modules_mode():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.9), nn.BatchNorm1d(8), nn.Linear(8, 2))
    model.train()
    model[2].eval()
    x = torch.randn(2, 4)
    before = [m.training for m in model.modules()]
    stats = model[2].running_mean.clone()
    expected = output_shapes(model, x)
    assert expected == (2, 2)
    assert forward_failure(model, x, expected) is None
    assert forward_failure(model, x, (2, 3)) == "its outputs have shapes (2, 2), the dense model's (2, 3)"
    assert [m.training for m in model.modules()] == before
    assert torch.equal(model[2].running_mean, stats)  # eval mode: no statistics updated
    bad = forward_failure(model, torch.randn(2, 5), expected)
    assert bad.startswith("its forward fails in module '0' (Linear): RuntimeError:")
    assert [m.training for m in model.modules()] == before
