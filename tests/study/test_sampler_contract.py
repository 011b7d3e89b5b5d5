"""The contract every registered sampler passes (optuna's ``BasicSamplerTestCase`` pattern).

Parametrized over :data:`autoprune.samplers.SAMPLERS` itself, so a sampler registered
before collection (a plugin's, a user's) is checked with the built-ins.
"""

from __future__ import annotations

import math

import optuna
import pytest

from autoprune.config import SearchSettings
from autoprune.samplers import SAMPLERS, make_sampler

N_TRIALS = 10
RATIO_STEP = 0.05


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    """The shape of an autoprune study: ratios on a grid, a categorical bit-width, a constraint."""
    a = trial.suggest_float("ratio:a", 0.0, 0.75, step=RATIO_STEP)
    b = trial.suggest_float("ratio:b", 0.0, 0.5, step=RATIO_STEP)
    bits = trial.suggest_categorical("bits:a", [8, 32])
    trial.set_constraint("budget", a - 0.6)
    return 1 - a * a - 0.5 * b, (1 - a) * (1 - b) * bits


def _run(name: str, seed: int) -> list[dict]:
    sampler = make_sampler(SearchSettings(sampler=name, n_trials=N_TRIALS, seed=seed))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(_objective, n_trials=N_TRIALS)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sampler_proposes_valid_params_and_is_deterministic_under_a_seed(name):
    first = _run(name, seed=5)
    again = _run(name, seed=5)
    assert len(first) == N_TRIALS
    for params in first:
        assert set(params) == {"ratio:a", "ratio:b", "bits:a"}
        for key, hi in (("ratio:a", 0.75), ("ratio:b", 0.5)):
            v = params[key]
            assert 0.0 <= v <= hi + 1e-12
            assert math.isclose(v / RATIO_STEP, round(v / RATIO_STEP), abs_tol=1e-9), f"{key}={v} is off the grid"
        assert params["bits:a"] in (8, 32)
    assert again == first, "the same seed gave a different sequence of proposals"
    assert len({tuple(sorted(p.items())) for p in first}) > 1, "the sampler proposed one point only"
