"""Grouped convolutions (ResNeXt, RegNet) are pruned group-consistently, through the public entry point.

Every slice of a grouped conv must lose the same positions: the layer keeps its group count,
and its weight is the dense weight at the kept output channels and kept in-slice positions.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import autoprune
from autoprune import zoo
from autoprune.compress import BuildSettings
from autoprune.profile.timing import make_session
from autoprune.space import keep_channels

warnings.filterwarnings("ignore", category=UserWarning)

# (zoo name, grouped conv, the BatchNorm before it, the BatchNorm after it) in each block
GROUPED = {"resnext": ("conv2", "bn1", "bn2"), "regnet": ("b", "a_bn", "b_bn")}
RATIOS = (0.1, 0.3, 0.5, 0.75)
SETTINGS = BuildSettings(bn_batches=2, calibration_samples=16)
_SPACES: dict[str, tuple] = {}


def _setup(arch):
    if arch not in _SPACES:
        model, x = zoo.build(arch), zoo.example_input(arch)
        _SPACES[arch] = (model, x, autoprune.discover(model, x))  # the study's discovery, at its defaults
    return _SPACES[arch]


def _kept(dense_bn: nn.BatchNorm2d, pruned_bn: nn.BatchNorm2d) -> list[int]:
    """Which dense channels a pruned BatchNorm kept (its affine weights are distinct values, copied exactly)."""
    dense = dense_bn.weight.tolist()
    return [dense.index(v) for v in pruned_bn.weight.tolist()]


def _slices_agree(kept: list[int], channels: int, groups: int) -> list[int]:
    """The in-slice positions kept, asserting every slice kept the same ones."""
    size = channels // groups
    per_slice = [sorted(k - s * size for k in kept if s * size <= k < (s + 1) * size) for s in range(groups)]
    assert all(p == per_slice[0] for p in per_slice), f"slices keep different positions: {per_slice}"
    assert per_slice[0], "every slice keeps at least one channel"
    return per_slice[0]


def _ort(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = make_session(onnx_bytes)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("arch", list(GROUPED))
def test_discover_marks_the_groups_that_feed_a_grouped_conv(arch):
    model, _, space = _setup(arch)
    conv, _, _ = GROUPED[arch]
    grouped = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and 1 < m.groups < m.out_channels}
    assert grouped and all(n.endswith(conv) for n in grouped)
    for name, m in grouped.items():
        into = [g for g in space.groups if name in g.members and g.name != name]  # feeds its input
        out = space.group(name) if name in {g.name for g in space.groups} else None
        owners = into + ([out] if out else [])
        assert owners and all(g.groups == m.groups for g in owners), (name, [(g.name, g.groups) for g in owners])


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("arch", list(GROUPED))
def test_grouped_convs_prune_consistently_export_and_quantize(arch, ratio):
    model, x, space = _setup(arch)
    conv_name, before_name, after_name = GROUPED[arch]
    X = zoo.example_input(arch, batch=16, seed=3).numpy()
    plan = space.plan_from_params(space.params_for(ratio, 8))
    artifact = autoprune.build(model, plan, X, x, SETTINGS)
    pruned = artifact.model
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape

    dense_mods, pruned_mods = dict(model.named_modules()), dict(pruned.named_modules())
    blocks = [n.rpartition(".")[0] for n in dense_mods if n.endswith("." + conv_name)]
    shrunk = 0
    for block in blocks:
        dense_conv, conv = dense_mods[f"{block}.{conv_name}"], pruned_mods[f"{block}.{conv_name}"]
        assert conv.groups == dense_conv.groups  # the group count is kept; each slice shrinks
        kept_in = _kept(dense_mods[f"{block}.{before_name}"], pruned_mods[f"{block}.{before_name}"])
        kept_out = _kept(dense_mods[f"{block}.{after_name}"], pruned_mods[f"{block}.{after_name}"])
        positions = _slices_agree(kept_in, dense_conv.in_channels, dense_conv.groups)
        _slices_agree(kept_out, dense_conv.out_channels, dense_conv.groups)
        expected = dense_conv.weight[kept_out][:, positions]
        assert torch.equal(conv.weight, expected), f"{block}.{conv_name}: weights are not the kept slices' weights"
        shrunk += conv.in_channels < dense_conv.in_channels
    if ratio >= 0.3:
        assert shrunk, "at ratio >= 0.3 some grouped conv loses channels"

    out = _ort(artifact.onnx_bytes, X[:4])
    assert out.shape == (4, 10) and np.isfinite(out).all()
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load_from_string(artifact.onnx_bytes).graph.node)


@pytest.mark.parametrize("arch", list(GROUPED))
def test_fp32_onnx_of_a_pruned_grouped_model_matches_torch(arch):
    model, x, space = _setup(arch)
    X = zoo.example_input(arch, batch=4, seed=4).numpy()
    artifact = autoprune.build(model, space.plan_from_params(space.params_for(0.5, 32)), X, x, SETTINGS)
    with torch.no_grad():
        ref = artifact.model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(_ort(artifact.onnx_bytes, X), ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("channels, groups, round_to", [(64, 8, 8), (48, 6, 8), (96, 12, 8), (128, 32, 8), (64, 4, 4), (30, 3, 8)])
@pytest.mark.parametrize("ratio", (0.0, 0.1, 0.3, 0.5, 0.75, 0.95))
def test_keep_channels_keeps_the_same_count_in_every_slice(channels, groups, round_to, ratio):
    keep = keep_channels(channels, ratio, round_to, groups=groups)
    assert keep % groups == 0 and groups <= keep <= channels
    per_slice = channels // groups
    step = round_to // np.gcd(round_to, groups)
    if per_slice >= 2 * step:  # wide enough slices: the total stays a multiple of round_to
        assert keep % round_to == 0


def test_depthwise_convs_shrink_their_group_count_as_before():
    model, x = zoo.build("mobilenetv2"), zoo.example_input("mobilenetv2")
    space = autoprune.discover(model, x)
    assert all(g.groups == 1 for g in space.groups)  # a depthwise conv imposes no slices
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), x, space=space)
    depthwise = [(m, dict(small.named_modules())[n]) for n, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels > 1]
    assert depthwise and any(p.groups < d.groups for d, p in depthwise)
    assert all(p.groups == p.in_channels == p.out_channels for _, p in depthwise)


class Multiplier(nn.Module):
    """A depthwise conv with channel multiplier 2 (groups == in_channels < out_channels): one input channel per group."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.dw, self.fc = nn.Conv2d(16, 32, 3, padding=1, groups=16), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.dw(torch.relu(self.bn(self.a(x))))).mean(dim=(2, 3)))


def test_a_group_with_one_channel_per_slice_is_excluded_with_the_reason_and_the_rest_prunes():
    model, x = Multiplier().eval(), torch.randn(1, 3, 8, 8)
    space = autoprune.discover(model, x, round_to=1)
    reasons = {e.name: e.reason for e in space.excluded if e.what == "prune"}
    assert "feed grouped layers in 16 groups" in reasons["a"] and "a" not in {g.name for g in space.groups}
    assert space.group("dw").groups == 16
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), x, space=space)
    assert (small.a.out_channels, small.dw.in_channels, small.dw.out_channels, small.dw.groups) == (16, 16, 16, 16)
    assert small(x).shape == (1, 4)
