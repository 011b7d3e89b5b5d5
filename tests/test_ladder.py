"""The ladder's allocation on synthetic curves: nested seeds, caps, the grid, the choice of group."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from autoprune.ladder import Seed, allocate, isotonic, seed_count
from autoprune.sensitivity import GroupCurve, Sensitivity
from autoprune.space import ChannelGroup, QuantLayer, SearchSpace

RATIOS = (0.0, 0.25, 0.5, 0.75)


def curve(name: str, accuracy, latency_ms, cap: float = 0.75) -> GroupCurve:
    saved = tuple(None if v is None or latency_ms[0] is None else latency_ms[0] - v for v in latency_ms)
    return GroupCurve(name, 64, 0.2, 0.75, RATIOS, (64, 48, 32, 16), tuple(accuracy), tuple(latency_ms), saved, (0.01,) * 4, cap)


def synthetic(curves, n_eval: int = 500) -> Sensitivity:
    return Sensitivity(tuple(curves), "synthetic", "synthetic", "measured", n_eval, 0.1, {}, {}, {})


def space_for(sens: Sensitivity, step: float = 0.05) -> SearchSpace:
    groups = tuple(ChannelGroup(c.name, "conv2d", c.channels, (c.name,), c.macs_share, 0.75) for c in sens.groups)
    layers = (QuantLayer("a", "conv2d", 0.5, (8, 32)), QuantLayer("b", "linear", 0.1, (32,)))
    return sens.cap_space(SearchSpace(groups, layers, (), 1000, ratio_step=step, round_to=8))


def three_groups() -> Sensitivity:
    # dense int8 latency 10 ms, dense accuracy 0.9
    return synthetic([
        curve("cheap", [0.9, 0.9, 0.899, 0.89], [10, 8.5, 7.0, 5.5]),          # saves a lot, loses nothing
        curve("costly", [0.9, 0.80, 0.6, 0.3], [10, 9.8, 9.6, 9.4], cap=0.25),  # saves little, collapses
        curve("middle", [0.9, 0.895, 0.88, 0.84], [10, 9.0, 8.2, 7.6], cap=0.5),
    ])


def test_seeds_are_nested_monotone_in_targets_and_distinct():
    sens = three_groups()
    seeds = allocate(sens, space_for(sens), 6)
    assert 2 <= len(seeds) <= 6
    assert len({tuple(sorted(s.params.items())) for s in seeds}) == len(seeds)
    for a, b in itertools.pairwise(seeds):
        assert b.target_ms < a.target_ms and b.predicted_latency_ms < a.predicted_latency_ms
        assert all(b.ratios()[g] >= a.ratios()[g] for g in a.ratios())  # a tighter target prunes no group less
        assert b.predicted_accuracy <= a.predicted_accuracy
    assert all(s.predicted_latency_ms <= s.target_ms + 1e-9 for s in seeds)
    assert [s.label for s in seeds] == [f"ladder-{i}" for i in range(1, len(seeds) + 1)]


def test_seeds_respect_caps_the_ratio_grid_and_take_int8():
    sens = three_groups()
    space = space_for(sens)
    caps = {g.name: g.max_ratio for g in space.groups}
    assert caps == {"cheap": 0.75, "costly": 0.25, "middle": 0.5}
    seeds = allocate(sens, space, 8)
    for s in seeds:
        assert set(s.params) == {"ratio:cheap", "ratio:costly", "ratio:middle", "bits:a"}  # single-choice layers are fixed
        assert s.params["bits:a"] == 8
        for g, r in s.ratios().items():
            assert r <= caps[g] + 1e-12
            assert abs(r / 0.05 - round(r / 0.05)) < 1e-9
    # the heaviest seed is every group at its cap (each step there still gains latency)
    assert seeds[-1].ratios() == caps


def test_the_cheap_high_latency_group_is_pruned_first():
    sens = three_groups()
    seeds = allocate(sens, space_for(sens), 8)
    first = seeds[0].ratios()
    assert first["cheap"] > 0 and first["costly"] == 0
    # the costly group is touched only after the cheap one is at its cap
    k = next(i for i, s in enumerate(seeds) if s.ratios()["costly"] > 0)
    assert seeds[k].ratios()["cheap"] == 0.75


def test_prediction_composes_groups_multiplicatively_and_stays_positive():
    # each group alone saves 60 % of the dense latency: adding the savings would predict below zero
    sens = synthetic([curve(n, [0.9] * 4, [10, 8, 6, 4]) for n in ("a", "b", "c")])
    seeds = allocate(sens, space_for(sens), 4)
    assert seeds[-1].predicted_latency_ms == pytest.approx(10 * 0.4 ** 3)
    assert all(s.predicted_latency_ms > 0 for s in seeds)


def test_noisy_curves_are_fitted_non_decreasing():
    assert isotonic([0, 3, 1, 2, 5]).tolist() == [0, 2, 2, 2, 5]
    assert isotonic([1, 2, 3]).tolist() == [1, 2, 3]
    # a saving that dips as the ratio grows (noise) does not make pruning more look slower
    sens = synthetic([curve("a", [0.9] * 4, [10, 9.0, 9.4, 8.0]), curve("b", [0.9] * 4, [10, 9.9, 9.8, 9.7])])
    seeds = allocate(sens, space_for(sens), 5)
    assert all(np.isfinite(s.predicted_latency_ms) for s in seeds)
    assert seeds[-1].ratios() == {"a": 0.75, "b": 0.75}


def test_no_latency_curves_or_no_count_gives_no_seeds():
    unmeasured = synthetic([curve("a", [0.9, 0.9, 0.9, 0.9], [None] * 4)])
    assert allocate(unmeasured, space_for(unmeasured), 5) == []
    sens = three_groups()
    assert allocate(sens, space_for(sens), 0) == []
    flat = synthetic([curve("a", [0.9] * 4, [10, 10, 10, 10])])  # nothing saves latency
    assert allocate(flat, space_for(flat), 5) == []


def test_seed_count_is_the_ladder_within_the_trials_left():
    assert seed_count(8, 48, 4) == 8
    assert seed_count(8, 10, 4) == 6
    assert seed_count(8, 4, 4) == 0
    assert seed_count(0, 100, 4) == 0


def test_seed_round_trips_and_says_what_it_predicts():
    sens = three_groups()
    s = allocate(sens, space_for(sens), 3)[0]
    assert Seed.from_dict(s.to_dict()) == s
    attrs = s.user_attrs(sens)
    assert attrs["seed"] == "ladder-1"
    assert attrs["predicted"]["latency_ms"]["source"] == "modelled" and attrs["predicted"]["latency_ms"]["value"] == s.predicted_latency_ms
    assert attrs["predicted"]["accuracy"]["source"] == "modelled"


def test_layers_costly_in_int8_stay_fp32_in_the_seeds():
    import dataclasses

    sens = three_groups()
    space = dataclasses.replace(space_for(sens), layers=(
        QuantLayer("stem", "conv2d", 0.01, (8, 32)), QuantLayer("a", "conv2d", 0.5, (8, 32)), QuantLayer("big", "conv2d", 0.3, (8, 32)),
    ))
    bits = {"stem": {"int8": 0.90, "fp32": 0.93, "macs_share": 0.01},  # int8 costs 3 points, and the layer is light
            "a": {"int8": 0.90, "fp32": 0.901, "macs_share": 0.5},     # within noise
            "big": {"int8": 0.90, "fp32": 0.93, "macs_share": 0.3}}    # costly in int8, but too heavy to keep fp32
    sens = dataclasses.replace(sens, bits=bits, bits_how="synthetic")
    assert sens.fp32_layers() == ["stem"]
    seeds = allocate(sens, space, 4)
    assert seeds and all(s.params["bits:stem"] == 32 and s.params["bits:a"] == 8 and s.params["bits:big"] == 8 for s in seeds)
    back = Sensitivity.from_dict(sens.to_dict())
    assert back.bits == bits and back.fp32_layers() == ["stem"]
    assert all(s.params["bits:stem"] == 8 for s in allocate(three_groups(), space, 4))  # not analysed: int8
