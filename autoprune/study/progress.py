"""A progress bar for a running study: trials done/total, elapsed, ETA, current best."""

from __future__ import annotations

import sys

import optuna
from tqdm import tqdm

from .outputs import feasible

__all__ = ["ProgressBar"]


class ProgressBar:
    """Optuna callback drawing a tqdm bar on stderr; the postfix shows the most accurate feasible trial."""

    def __init__(self, total: int, done: int, enabled: bool = True) -> None:
        self.bar = tqdm(total=total, initial=done, unit="trial", file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = None
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            m = t.user_attrs.get("metrics", {})
            if feasible(t) and "accuracy" in m:
                key = (m["accuracy"]["value"], -m["latency_ms"]["value"])
                best = max(best or key, key)
        if best:
            self.bar.set_postfix_str(f"best acc {best[0]:.4f} @ {-best[1]:.3f} ms (measured)")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
