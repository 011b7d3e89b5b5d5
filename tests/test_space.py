"""discover(): unsupported layers, exclusions, whole-head groups, channel rounding, plan checking."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import autoprune
from autoprune.exceptions import PlanError, UnsupportedLayerError
from autoprune.plan import LayerPlan, Plan
from autoprune.space import discover, keep_channels

warnings.filterwarnings("ignore", category=UserWarning)


class ChannelScale(nn.Module):
    """A custom module with its own parameter, a per-channel scale (resized with its channels unless excluded)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, c).view(c, 1, 1))

    def forward(self, x):
        return x * self.gain


class WithCustom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.scale, self.conv2 = nn.Conv2d(3, 16, 3), ChannelScale(16), nn.Conv2d(16, 16, 3)
        self.conv3, self.fc = nn.Conv2d(16, 16, 3), nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.conv2(self.scale(self.conv1(x))))
        return self.fc(torch.relu(self.conv3(x)).mean(dim=(2, 3)))


class ChannelMix(nn.Module):
    """A hand-written 1x1 convolution: its weight feeds a matrix product, which torch-pruning cannot resize."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.eye(c))

    def forward(self, x):
        return torch.einsum("bchw,dc->bdhw", x, self.gain)


class WithMix(WithCustom):
    def __init__(self) -> None:
        super().__init__()
        self.scale = ChannelMix(16)


class WithGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj, self.gru, self.fc = nn.Linear(8, 16), nn.GRU(16, 16, batch_first=True), nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.gru(self.proj(x))[0].mean(1))


class WithMHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj, self.mha = nn.Linear(8, 16), nn.MultiheadAttention(16, 2, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x):
        x = self.proj(x)
        x = self.mha(x, x, x, need_weights=False)[0]
        return self.fc2(torch.relu(self.fc1(x.mean(1))))


X_IMG, X_SEQ = torch.randn(1, 3, 12, 12), torch.randn(1, 5, 8)


def test_custom_module_with_parameters_is_refused_naming_it_and_the_fix():
    # (a per-channel scale such as ChannelScale is resized instead: tests/compress/test_bare_params.py)
    with pytest.raises(UnsupportedLayerError, match=r"module 'scale' \(ChannelMix\).*\['gain'\].*search: exclude: \[scale\]"):
        discover(WithMix().eval(), X_IMG)


def test_excluded_custom_module_freezes_its_coupled_channels_and_the_rest_still_prunes():
    model = WithCustom().eval()
    space = autoprune.discover(model, X_IMG, exclude=["scale"])
    assert [g.name for g in space.groups] == ["conv2", "conv3"]
    reasons = {e.name: e.reason for e in space.excluded if e.what == "prune"}
    assert "excluded by configuration" in reasons["scale"]
    assert reasons["conv1"].startswith("coupled to scale")
    with pytest.raises(PlanError, match=r"layers.conv1.ratio: conv1 cannot be pruned \(coupled to scale"):
        space.resolve(Plan({"conv1": LayerPlan(ratio=0.5)}))
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), X_IMG, space=space)
    assert small.conv1.out_channels == 16 and small.scale.gain.shape[0] == 16 and small.conv2.out_channels == 8
    assert small(X_IMG).shape == (1, 4)


def test_gru_is_refused():
    with pytest.raises(UnsupportedLayerError, match=r"module 'gru' \(GRU\)"):
        discover(WithGRU().eval(), X_SEQ)


def test_excluding_a_parent_covers_the_custom_module_inside():
    outer = nn.Sequential(WithCustom())
    space = discover(outer.eval(), X_IMG, exclude=["re:0\\.sc.*"])
    assert "0.conv1" not in {g.name for g in space.groups}


def test_multihead_attention_prunes_its_width_in_equal_slices_per_head():
    # (tests/compress/test_mha.py checks that every head keeps the same positions)
    model = WithMHA().eval()
    space = discover(model, X_SEQ)
    assert [g.name for g in space.groups] == ["proj", "fc1"]
    assert space.group("proj").groups == 2 and "mha" in space.group("proj").members
    assert "mha.out_proj" in {q.name for q in space.layers}
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), X_SEQ, space=space)
    assert (small.mha.embed_dim, small.mha.num_heads, small.mha.head_dim) == (8, 2, 4)
    assert small.fc1.out_features == 16 and small(X_SEQ).shape == (1, 4)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 512), st.floats(0.0, 0.95), st.sampled_from([1, 4, 8, 16]))
def test_keep_channels_rounds_to_hardware_friendly_multiples(channels, ratio, round_to):
    keep = keep_channels(channels, ratio, round_to)
    assert 1 <= keep <= channels
    if channels >= 2 * round_to and keep < channels:  # rounding up to the full width means "leave it"
        assert keep % round_to == 0 and keep >= round_to


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 16), st.floats(0.0, 0.95), st.sampled_from([8, 16, 32]))
def test_blocks_are_never_split(heads, ratio, head_dim):
    keep = keep_channels(heads * head_dim, ratio, 8, block=head_dim)
    assert keep % head_dim == 0 and head_dim <= keep <= heads * head_dim


def test_plans_that_do_not_fit_are_refused_with_the_key():
    from autoprune import zoo

    model, x = zoo.build("cnn"), zoo.example_input("cnn")
    space = discover(model, x, max_ratio=0.5, bits=(8, 32))
    with pytest.raises(PlanError, match="layers.nothere names no layer"):
        space.resolve(Plan({"nothere": LayerPlan(ratio=0.1)}))
    with pytest.raises(PlanError, match=r"layers.features.0.ratio must be in \[0, 0.5\], got 0.6"):
        space.resolve(Plan({"features.0": LayerPlan(ratio=0.6)}))
    with pytest.raises(PlanError, match="fc cannot be pruned .its output channels are the model's output"):
        space.resolve(Plan({"fc": LayerPlan(ratio=0.5)}))
    with pytest.raises(PlanError, match=r"layers.fc.bits must be one of \[8, 32\], got 4"):
        space.resolve(Plan({"fc": LayerPlan(bits=4)}))
    ratios, bits = space.resolve(Plan({"re:features\\..*": LayerPlan(ratio=0.25, bits=8)}))
    assert set(ratios.values()) == {0.25} and bits["features.0"] == 8 and bits["fc"] == 32
