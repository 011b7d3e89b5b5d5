"""The Optuna objective: plan from the trial, build, measure, record, return the objective values."""

from __future__ import annotations

import optuna

from ..config import Constraints
from ..exceptions import AutopruneError, CandidateError, ProfilerError
from ..metrics import metric_names
from ..profile import Profiler
from .candidate import measure
from .context import StudyContext

__all__ = ["Objective", "CANDIDATE_ERRORS", "constraint_values"]

# Failures of one candidate: the trial fails with the reason, the study goes on.
CANDIDATE_ERRORS = (CandidateError, ProfilerError)


def constraint_values(constraints: Constraints, values: dict[str, float], dense_accuracy: float | None) -> dict[str, float]:
    """Named constraint values for metric ``values``, feasible when <= 0 (Optuna's convention).

    A budget on a metric the candidate lacks (e.g. energy with no meter and no power figure)
    is infinitely violated.
    """
    out = {}
    if constraints.max_accuracy_drop is not None and dense_accuracy is not None:
        out["max_accuracy_drop"] = (dense_accuracy - values["accuracy"]) - constraints.max_accuracy_drop
    for name in metric_names(budget=True):
        budget = getattr(constraints, name)
        if budget is not None:
            out[name] = values[name] - budget if name in values else float("inf")
    return out


class Objective:
    """Callable objective; ``dense_accuracy`` is the dense fp32 reference for the accuracy-drop constraint."""

    def __init__(self, ctx: StudyContext, profiler: Profiler, dense_accuracy: float | None) -> None:
        self.ctx = ctx
        self.profiler = profiler
        self.dense_accuracy = dense_accuracy

    def constraints(self, metrics: dict) -> dict[str, float]:
        """Named constraint values of a candidate's metrics (see :func:`constraint_values`)."""
        values = {k: m.value for k, m in metrics.items()}
        return constraint_values(self.ctx.config.constraints, values, self.dense_accuracy)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        plan = self.ctx.space.suggest(trial)
        try:
            result = measure(self.ctx, plan, self.profiler)
        except CANDIDATE_ERRORS as e:
            trial.set_user_attr("plan", plan.to_dict()["layers"])
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            raise
        except AutopruneError as e:  # a plan the space rejects is a bug in the space, not the candidate
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            raise
        for key, value in result.user_attrs().items():
            trial.set_user_attr(key, value)
        for name, value in self.constraints(result.metrics).items():
            trial.set_constraint(name, value)
        # The device's hard limits (a microcontroller's flash and SRAM): infeasible, with the reason.
        for limit in result.measurement.limits:
            trial.set_constraint(f"device_{limit.name}", limit.excess)
        broken = [limit.reason() for limit in result.measurement.limits if limit.excess > 0]
        if broken:
            trial.set_user_attr("infeasible_reason", f"refused by device {self.ctx.device.name}: " + "; ".join(broken))
        missing = [o for o in self.ctx.config.objectives if o not in result.metrics]
        if missing:
            reason = f"objective {missing[0]} is not available on device {self.ctx.device.name} (no meter and no power figure)"
            trial.set_user_attr("fail_reason", reason)
            raise CandidateError(reason)
        return tuple(result.metrics[o].value for o in self.ctx.config.objectives)
