"""Every configured sampler drives a real constrained two-objective study."""

import optuna
import pytest

from autoprune.config import SAMPLERS, SearchSettings
from autoprune.samplers import make_sampler


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_runs_a_constrained_multi_objective_study(name):
    sampler = make_sampler(SearchSettings(sampler=name, n_trials=12, seed=3))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)

    def objective(trial):
        x = trial.suggest_float("ratio:a", 0.0, 0.75, step=0.05)
        b = trial.suggest_categorical("bits:a", [8, 32])
        trial.set_constraint("budget", x - 0.6)
        return 1 - x * x, (1 - x) * b

    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12
    front = study.best_trials
    assert front and all(t.constraints["budget"] <= 0 for t in front)
