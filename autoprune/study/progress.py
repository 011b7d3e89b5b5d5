"""A progress bar for a running study: trials done/total, elapsed, ETA, current best."""

from __future__ import annotations

import sys
from typing import Iterable

import optuna
from tqdm import tqdm

from ..metrics import metric_direction
from .outputs import feasible

__all__ = ["ProgressBar"]


class ProgressBar:
    """Optuna callback drawing a tqdm bar on stderr; the postfix shows the most accurate feasible trial.

    The best trial is kept as the trials come (O(1) per trial), seeded from ``trials``, the
    study's trials when the run starts; a failed trial's reason, and an infeasible one's,
    is written above the bar (on stderr, and only when the bar is drawn: stdout may carry JSON).

    Args:
        total: Trials the study should have.
        done: Trials already finished.
        enabled: Draw the bar (False: keep count silently).
        trials: The study's trials when the run starts.
    """

    def __init__(self, total: int, done: int, enabled: bool = True, trials: Iterable[optuna.trial.FrozenTrial] = ()) -> None:
        self.bar = tqdm(total=total, initial=done, unit="trial", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self.best: tuple[float, float] | None = None
        self.shown: tuple[float, float] | None = None  # the best trial's (accuracy, latency_ms)
        self.shown_source = ""  # how the best trial's latency was obtained (measured, modelled...)
        for t in trials:
            self._consider(t)

    def _consider(self, t: optuna.trial.FrozenTrial) -> None:
        m = t.user_attrs.get("metrics", {})
        if t.state == optuna.trial.TrialState.COMPLETE and feasible(t) and "accuracy" in m:
            # the most accurate; ties go to the better latency, better as the metric table says
            sign = {"maximize": 1.0, "minimize": -1.0}
            key = (sign[metric_direction("accuracy")] * m["accuracy"]["value"],
                   sign[metric_direction("latency_ms")] * m["latency_ms"]["value"])
            self.best = max(self.best or key, key)
            if key == self.best:
                self.shown, self.shown_source = (m["accuracy"]["value"], m["latency_ms"]["value"]), m["latency_ms"].get("source", "")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.FAIL:
            self._note(f"trial {trial.number} failed: {trial.user_attrs.get('fail_reason', 'see the storage')}")
        elif trial.user_attrs.get("infeasible_reason") and not feasible(trial):
            self._note(f"trial {trial.number} infeasible: {trial.user_attrs['infeasible_reason']}")
        self._consider(trial)
        if self.best:
            self.bar.set_postfix_str(f"best acc {self.shown[0]:.4f} @ {self.shown[1]:.3f} ms ({self.shown_source or 'unknown'})")
        self.bar.update(1)

    def _note(self, line: str) -> None:
        if not self.bar.disable:  # tqdm.write prints even for a disabled bar, to stdout by default
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
