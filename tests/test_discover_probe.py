"""discover(probe=True): groups whose pruning breaks the model are excluded with the reason before any search."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import transformers
from torch import nn

import autoprune
from autoprune.plan import LayerPlan, Plan
from autoprune.probe import one_step

from broken_models import OneFixedView

warnings.filterwarnings("ignore")


X7 = torch.randn(1, 3, 7, 7)  # 7x7: a fixed view of fewer channels cannot divide the elements


def _whisper() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = transformers.WhisperForAudioClassification(transformers.WhisperConfig(
        d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, num_mel_bins=16,
        max_source_positions=16, decoder_layers=1, decoder_attention_heads=4, num_labels=3)).eval()
    return model, torch.from_numpy(np.random.default_rng(0).standard_normal((1, 16, 32)).astype(np.float32))


def _half(space) -> Plan:
    return Plan({g.name: LayerPlan(ratio=0.5) for g in space.groups})


def test_the_whisper_encoder_needs_no_hand_written_exclude_with_the_probe():
    model, x = _whisper()
    space = autoprune.discover(model, x, probe=True)
    # The encoder adds its position table by weight, outside any module's forward: pruning the
    # residual width breaks the sum, so that group is left out, with what breaks.
    reasons = {e.name: e.reason for e in space.excluded if e.what == "prune"}
    why = reasons["encoder.layers.1.fc2"]
    assert why.startswith("pruning it alone breaks the model (found by the discovery probe): its forward fails in "
                          "module 'encoder' (WhisperEncoder): RuntimeError: The size of tensor a (56) must match")
    plain = autoprune.discover(model, x)
    assert [g.name for g in space.groups] == [g.name for g in plain.groups if g.name != "encoder.layers.1.fc2"]
    pruned = autoprune.compress.prune(model, _half(space), x, space=space)  # every other group, at 0.5: it runs
    attention = [m for n, m in pruned.named_modules() if type(m).__name__ == "WhisperAttention"]
    assert [m.num_heads for m in attention] == [2, 2]
    assert [layer.fc1.out_features for layer in pruned.encoder.layers] == [64, 64]
    assert pruned(x).logits.shape == (1, 3)


def test_a_group_that_breaks_a_fixed_reshape_is_excluded_naming_the_module_and_the_rest_prunes():
    model = OneFixedView().eval()
    space = autoprune.discover(model, X7, probe=True)
    assert [g.name for g in space.groups] == ["c1"]
    (why,) = [e.reason for e in space.excluded if e.name == "c2"]
    assert "its forward fails in module 'view' (FixedView): RuntimeError: shape" in why
    small = autoprune.compress.prune(model, _half(space), X7, space=space)
    assert (small.c1.out_channels, small.c2.out_channels) == (16, 32) and small(X7).shape == (1, 4)


def test_without_the_probe_discovery_offers_the_group_and_compress_refuses_it():
    model = OneFixedView().eval()
    space = autoprune.discover(model, X7, probe=False)  # the default: tests/compress/test_never_broken.py relies on it
    assert [g.name for g in space.groups] == ["c1", "c2"] and space == autoprune.discover(model, X7)


def test_the_probe_changes_nothing_where_every_group_prunes_and_is_deterministic():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 8 * 8, 4)).eval()
    x = torch.randn(1, 3, 12, 12)
    plain, probed = autoprune.discover(model, x), autoprune.discover(model, x, probe=True)
    assert probed.summary() == plain.summary() == autoprune.discover(model, x, probe=True).summary()
    whisper, wx = _whisper()
    once, again = autoprune.discover(whisper, wx, probe=True), autoprune.discover(whisper, wx, probe=True)
    assert once.summary() == again.summary() and len(once.groups) < len(autoprune.discover(whisper, wx).groups)


def test_a_model_that_nothing_breaks_costs_one_pruned_copy_for_all_groups(monkeypatch):
    import autoprune.probe

    calls = []
    real = autoprune.probe.pruning_failure
    monkeypatch.setattr(autoprune.probe, "pruning_failure", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    model, x = _whisper()
    space = autoprune.discover(model, x, exclude=["encoder.layers.1.fc2"], probe=True)
    assert calls == [{g.name: one_step(g, space) for g in space.groups}]  # all groups at once, one step each
    assert calls[0]["encoder.conv1"] == 0.1 and calls[0]["encoder.layers.0.self_attn.v_proj"] == 0.15  # a whole head
    calls.clear()
    probed = autoprune.discover(model, x, probe=True)  # something breaks: halves of the groups, down to the one that does
    n = len(autoprune.discover(model, x).groups)
    assert calls[0].keys() == {g.name for g in autoprune.discover(model, x).groups} and len(calls[0]) == n
    assert all(len(c) < n for c in calls[1:]) and {"encoder.layers.1.fc2": 0.1} in calls
    assert len(calls) <= 1 + 2 * math.ceil(math.log2(n)) < 1 + n  # fewer copies than pruning each group alone
    assert [e.name for e in probed.excluded if "discovery probe" in e.reason] == ["encoder.layers.1.fc2"]


def test_one_step_is_the_smallest_ratio_on_the_grid_that_removes_channels():
    model, x = OneFixedView().eval(), X7
    space = autoprune.discover(model, x)
    c2 = space.group("c2")  # 32 channels in multiples of 8: 5% keeps 30.4 -> 32, 10% 28.8 -> 32, 15% 27.2 -> 24
    assert one_step(c2, space) == 0.15 and c2.kept(0.15, 8) == 24
    narrow = autoprune.discover(model, x, max_ratio=0.1)
    assert one_step(narrow.group("c2"), narrow) is None
    assert [g.name for g in autoprune.discover(model, x, max_ratio=0.1, probe=True).groups] == ["c1", "c2"]
