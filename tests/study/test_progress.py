"""The progress bar's "current best": the most accurate feasible trial, ties to the faster one."""

from __future__ import annotations

import optuna

from autoprune.study.progress import ProgressBar


def _trial(number: int, acc: float, ms: float, state=optuna.trial.TrialState.COMPLETE, violation: float = 0.0):
    metrics = {"accuracy": {"value": acc}, "latency_ms": {"value": ms}}
    return optuna.trial.FrozenTrial(
        number=number, state=state, value=None, values=[acc, ms] if state == optuna.trial.TrialState.COMPLETE else None,
        datetime_start=None, datetime_complete=None, params={}, distributions={}, user_attrs={"metrics": metrics},
        system_attrs={"constraints": [violation]}, intermediate_values={}, trial_id=number,
    )


def test_the_best_is_the_most_accurate_feasible_trial_ties_going_to_the_faster():
    bar = ProgressBar(10, 2, enabled=False, trials=[_trial(0, 0.90, 1.0), _trial(1, 0.95, 2.0)])
    assert bar.shown == (0.95, 2.0)  # seeded from the trials a resumed run starts with
    bar(None, _trial(2, 0.95, 1.5))  # as accurate, faster
    assert bar.shown == (0.95, 1.5)
    bar(None, _trial(3, 0.95, 1.8))  # as accurate, slower: not the best
    bar(None, _trial(4, 0.99, 0.1, violation=1.0))  # infeasible
    bar(None, _trial(5, 0.99, 0.1, state=optuna.trial.TrialState.FAIL))
    assert bar.shown == (0.95, 1.5)
    bar.close()
