"""Plan: YAML round trip, precedence of exact keys over re: patterns, validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoprune.exceptions import PlanError
from autoprune.plan import LayerPlan, Plan

_path = st.from_regex(r"[a-z]{1,6}(\.[0-9a-z]{1,4}){0,3}", fullmatch=True)
_pattern = st.sampled_from(["re:layer[0-9]+\\..*", "re:.*conv1", "re:fc", "re:features\\.(3|7)"])
_entry = st.builds(
    LayerPlan,
    ratio=st.none() | st.floats(0.0, 0.99, allow_nan=False),
    bits=st.none() | st.sampled_from([2, 4, 8, 16, 32]),
)
_meta = st.dictionaries(st.text("abcdef_", min_size=1, max_size=8), st.integers() | st.text(max_size=10) | st.booleans(), max_size=3)
plans = st.builds(Plan, layers=st.dictionaries(_path | _pattern, _entry, max_size=8), meta=_meta)


@settings(max_examples=40, deadline=None)
@given(plans)
def test_save_then_load_gives_an_equal_plan(tmp_path_factory, plan):
    path = tmp_path_factory.mktemp("plan") / "plan.yaml"
    plan.save(path)
    loaded = Plan.load(path)
    assert loaded == plan
    assert list(loaded.layers) == list(plan.layers)  # pattern order is precedence order


@settings(max_examples=40, deadline=None)
@given(plans, _path)
def test_resolution_is_the_same_after_a_round_trip(plan, name):
    again = Plan.from_dict(plan.to_dict())
    assert (again.ratio(name), again.bits(name)) == (plan.ratio(name), plan.bits(name))


def test_exact_key_beats_patterns_and_first_pattern_wins():
    plan = Plan({
        "re:layer1\\..*": LayerPlan(ratio=0.25, bits=8),
        "re:layer.*": LayerPlan(ratio=0.5, bits=4),
        "layer1.0.conv1": LayerPlan(ratio=0.75),
    })
    assert plan.ratio("layer1.0.conv1") == 0.75
    assert plan.bits("layer1.0.conv1") == 8  # the exact entry says nothing about bits: falls through to the patterns
    assert (plan.ratio("layer1.1.conv2"), plan.bits("layer1.1.conv2")) == (0.25, 8)
    assert (plan.ratio("layer2.0.conv1"), plan.bits("layer2.0.conv1")) == (0.5, 4)
    assert (plan.ratio("fc"), plan.bits("fc")) == (0.0, 32)  # default: left as it is


def test_unmatched_lists_keys_that_name_nothing():
    plan = Plan({"conv1": LayerPlan(ratio=0.5), "re:block.*": LayerPlan(bits=8), "nothere": LayerPlan(bits=8)})
    assert plan.unmatched(["conv1", "fc"]) == ["re:block.*", "nothere"]


@pytest.mark.parametrize(
    "layers, match",
    [
        ({"re:(": LayerPlan(ratio=0.1)}, "not a valid regular expression"),
        ({"conv1": LayerPlan(ratio=1.0)}, r"ratio must be a number in \[0, 1\)"),
        ({"conv1": LayerPlan(bits=0)}, r"bits must be an integer in \[1, 32\]"),
        ({"conv1": LayerPlan(bits=True)}, "bits must be an integer"),
    ],
)
def test_bad_entries_are_refused(layers, match):
    with pytest.raises(PlanError, match=match):
        Plan(layers)


def test_unknown_keys_in_yaml_are_refused(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nlayers:\n  conv1: {ratio: 0.5, bit: 8}\n")
    with pytest.raises(PlanError, match="bit"):
        Plan.load(path)
