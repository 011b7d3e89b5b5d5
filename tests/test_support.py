"""Unsupported modules: one error names every one of them, with an exclude list that works when pasted."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml
from torch import nn

import autoprune
from autoprune.exceptions import UnsupportedLayerError
from autoprune.support import exclude_hint

warnings.filterwarnings("ignore", category=UserWarning)


class LayerScale(nn.Module):
    """A hand-written 1x1 convolution named like a scale: its weight feeds a matrix product, which torch-pruning
    cannot resize (a per-channel ``x * gamma`` is resized instead: tests/compress/test_bare_params.py)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.eye(c) * 0.5)

    def forward(self, x):
        return torch.einsum("bchw,dc->bdhw", x, self.gamma)


class Scaled(nn.Module):
    """Two custom mixes and a parameter on the root module itself (a hand-written output projection)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.scale1 = nn.Conv2d(3, 16, 3), LayerScale(16)
        self.conv2, self.scale2 = nn.Conv2d(16, 16, 3), LayerScale(16)
        self.conv3 = nn.Conv2d(16, 16, 3)
        self.token = nn.Parameter(torch.eye(4))
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.scale2(self.conv2(torch.relu(self.scale1(self.conv1(x)))))
        return self.fc(torch.relu(self.conv3(torch.relu(x))).mean(dim=(2, 3))) @ self.token


X = torch.randn(1, 3, 12, 12)


def test_every_unsupported_module_is_named_in_one_error():
    with pytest.raises(UnsupportedLayerError) as err:
        autoprune.discover(Scaled().eval(), X)
    message = str(err.value)
    assert err.value.modules == ("", "scale1", "scale2")
    for part in ("the model's root module '' (Scaled) with ['token']", "module 'scale1' (LayerScale) with ['gamma']",
                 "module 'scale2' (LayerScale) with ['gamma']", "have their own parameters"):
        assert part in message
    assert "search: exclude: ['', scale1, scale2]" in message
    assert "exclude=['', 'scale1', 'scale2']" in message and "\"''\"" not in message


def test_the_pasted_python_exclude_list_discovers_in_one_more_round():
    model = Scaled().eval()
    with pytest.raises(UnsupportedLayerError) as err:
        autoprune.discover(model, X)
    pasted = eval(str(err.value).split("exclude=", 1)[1].split(")", 1)[0])  # the text after exclude=, as a user pastes it
    space = autoprune.discover(model, X, exclude=pasted)
    frozen = {e.name for e in space.excluded if e.what == "prune"}
    assert {"", "scale1", "scale2"} <= frozen and space.groups  # conv3's inner channels still prune
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), X, space=space)
    assert small(X).shape == (1, 4)


def test_the_pasted_yaml_exclude_list_loads_as_the_same_names():
    hint = exclude_hint(["", "blocks.0.scale", "re:.*gamma"])
    listed = hint.split("`search: exclude: ", 1)[1].split("`", 1)[0]
    assert yaml.safe_load(listed) == ["", "blocks.0.scale", "re:.*gamma"]
    assert "exclude=['', 'blocks.0.scale', 're:.*gamma']" in hint


def test_one_unsupported_module_reads_in_the_singular():
    class One(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.scale, self.fc = nn.Conv2d(3, 8, 3), LayerScale(8), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.scale(self.conv(x)).mean(dim=(2, 3)))

    with pytest.raises(UnsupportedLayerError, match=r"^module 'scale' \(LayerScale\) with \['gamma'\] has its own parameters "
                       r".*Exclude it: add `search: exclude: \[scale\]`") as err:
        autoprune.discover(One().eval(), X)
    assert err.value.modules == ("scale",)
