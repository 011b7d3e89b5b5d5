"""Pareto helpers: exact hypervolume on hand-computed cases and against Optuna's own figure."""

import itertools
import random

import optuna
import pytest

from autoprune.pareto import hypervolume, hypervolume_history, non_dominated, reference_point, to_minimization


def test_to_minimization_negates_maximised_objectives():
    assert to_minimization((0.9, 2.0), ("maximize", "minimize")) == (-0.9, 2.0)


def test_non_dominated_keeps_front_and_ties():
    pts = [(1, 5), (2, 2), (5, 1), (3, 3), (2, 2), (6, 6)]
    assert non_dominated(pts) == [0, 1, 2, 4]


@pytest.mark.parametrize(
    "points, ref, expected",
    [
        ([(1, 1)], (3, 3), 4.0),
        ([(1, 2), (2, 1)], (3, 3), 3.0),  # 2 + 2 - 1 overlap
        ([(1, 2), (2, 1), (2, 2)], (3, 3), 3.0),  # a dominated point adds nothing
        ([(4, 0)], (3, 3), 0.0),  # outside the reference box
        ([], (1, 1), 0.0),
        ([(0, 0, 0)], (1, 2, 3), 6.0),
        ([(0, 1, 1), (1, 0, 1), (1, 1, 0)], (2, 2, 2), 4.0),  # 3 boxes of 2, 3 pairwise overlaps of 1, triple 1: 6 - 3 + 1
    ],
)
def test_hypervolume_exact(points, ref, expected):
    assert hypervolume(points, ref) == pytest.approx(expected)


def test_hypervolume_3d_matches_grid_count():
    rng = random.Random(0)
    pts = [tuple(rng.randint(0, 9) for _ in range(3)) for _ in range(12)]
    ref = (10, 10, 10)
    cells = sum(any(all(p[i] <= c[i] for i in range(3)) for p in pts) for c in itertools.product(range(10), repeat=3))
    assert hypervolume(pts, ref) == pytest.approx(cells)


def test_reference_point_is_beyond_the_worst():
    assert reference_point([(0.0, 1.0), (2.0, 3.0)], margin=0.5) == (3.0, 4.0)


def test_history_is_monotone_and_skips_none():
    h = hypervolume_history([(2, 2), None, (3, 3), (1, 1)], (4, 4))
    assert h == [4.0, 4.0, 4.0, 9.0]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_history_matches_optunas_public_hypervolume_figure(tiny_run):
    """Same numbers as optuna.visualization.plot_hypervolume_history on the real tiny study."""
    from autoprune.report import build_report_data, open_run

    data = build_report_data(open_run(tiny_run.out_dir))
    hv = data.hypervolume
    fig = optuna.visualization.plot_hypervolume_history(tiny_run.study, hv["reference_point"])
    ours = [h["value"] for h in hv["history"]]
    assert list(fig.data[0].x) == [h["number"] for h in hv["history"]]
    assert list(fig.data[0].y) == pytest.approx(ours)
    assert ours[-1] > 0
