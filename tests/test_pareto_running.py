"""RunningFront, taking points one at a time, keeps exactly the front non_dominated finds over all of them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autoprune.pareto import RunningFront, non_dominated

# Few distinct values, so that ties and duplicates (kept on the front, like non_dominated) are common.
coords = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, float("inf")])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=3).flatmap(lambda d: st.lists(st.tuples(*[coords] * d), max_size=40)))
def test_running_front_equals_the_front_of_all_points(points):
    front = RunningFront()
    joined = [front.add(i, p) for i, p in enumerate(points)]
    assert sorted(front.keys()) == non_dominated(points)  # every point no other point dominates
    assert len(front) == len(non_dominated(points))
    for i, p in enumerate(points):  # a point joins unless an earlier one dominates it
        assert joined[i] == (i in non_dominated(points[: i + 1]))


def test_a_dominated_newcomer_is_refused_and_a_better_one_pushes_out():
    front = RunningFront()
    assert front.add("a", (1.0, 2.0)) and front.add("b", (2.0, 1.0))
    assert not front.add("c", (2.0, 2.0))
    assert front.add("d", (1.0, 1.0))
    assert front.keys() == ["d"]
