"""The Optuna objective: plan from the trial, build, measure, record, return the objective values."""

from __future__ import annotations

import dataclasses
import time
from typing import Iterable

import optuna

from ..config import Constraints
from ..device import Limit
from ..exceptions import AutopruneError, CandidateError, ProfilerError
from ..metrics import METRICS, Metric, metric_names
from ..plan import Plan
from ..profile import Profiler
from .candidate import measure
from .context import StudyContext
from .screen import Screening, ScreenPolicy, screen, screens

__all__ = ["Objective", "CANDIDATE_ERRORS", "constraint_values", "infeasible_reason"]

# Failures of one candidate: the trial fails with the reason, the study goes on.
CANDIDATE_ERRORS = (CandidateError, ProfilerError)
# The budgets a screen holds a forecast to (latency, energy): a built trial that breaks one would have been turned away.
_SCREENED_BUDGETS = frozenset(metric_names(is_timing=True, budget=True))


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


def infeasible_reason(
    constraints: Constraints,
    metrics: dict[str, Metric],
    dense_accuracy: float | None,
    limits: Iterable[Limit] = (),
    device: str = "",
) -> str:
    """One line naming each constraint a candidate breaks, with its value and the limit; ``""`` when it breaks none.

    The device's hard limits come first, then the study's ``constraints:`` that
    :func:`constraint_values` finds violated, e.g. ``"refused by device cortex-m7: flash_kb:
    weights and constants in flash 1100.2 kB exceeds the device's 1024 kB; latency_ms
    12.5 ms (modelled) exceeds constraints.latency_ms 10 ms"``.

    Args:
        constraints: The study's constraints.
        metrics: The candidate's metrics.
        dense_accuracy: The dense fp32 reference of ``max_accuracy_drop``.
        limits: The device's hard limits against what the candidate needs (see :class:`~autoprune.device.Limit`).
        device: The device's name.
    """
    parts = []
    broken = [limit.reason() for limit in limits if limit.excess > 0]
    if broken:
        parts.append(f"refused by device {device}: " + "; ".join(broken))
    values = {k: m.value for k, m in metrics.items()}
    for name, excess in constraint_values(constraints, values, dense_accuracy).items():
        if excess > 0:
            parts.append(_broken(name, constraints, metrics, dense_accuracy, device))
    return "; ".join(parts)


def _broken(name: str, constraints: Constraints, metrics: dict[str, Metric], dense_accuracy: float | None, device: str) -> str:
    if name == "max_accuracy_drop":
        acc = metrics["accuracy"]
        return (f"accuracy drop {dense_accuracy - acc.value:.4g} (dense fp32 {dense_accuracy:.4f}, this trial {acc.value:.4f}, "
                f"{acc.source}) exceeds constraints.max_accuracy_drop {constraints.max_accuracy_drop:g}")
    unit = f" {METRICS[name].unit}" if METRICS[name].unit else ""
    budget = f"constraints.{name} {getattr(constraints, name):g}{unit}"
    m = metrics.get(name)
    if m is None:
        return f"{name} has no value on device {device} (no meter and no power figure), so {budget} cannot hold"
    return f"{name} {m.value:.6g}{unit} ({m.source}) exceeds {budget}"


class Objective:
    """Callable objective; ``dense_accuracy`` is the dense fp32 reference for the accuracy-drop constraint."""

    def __init__(self, ctx: StudyContext, profiler: Profiler, dense_accuracy: float | None) -> None:
        self.ctx = ctx
        self.profiler = profiler
        self.dense_accuracy = dense_accuracy
        self.screens = screens(ctx, profiler)  # price each plan's untrained twin before training it
        self.policy = ScreenPolicy()  # while it pays

    def constraints(self, metrics: dict) -> dict[str, float]:
        """Named constraint values of a candidate's metrics (see :func:`constraint_values`)."""
        values = {k: m.value for k, m in metrics.items()}
        return constraint_values(self.ctx.config.constraints, values, self.dense_accuracy)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        plan = self.ctx.space.suggest(trial)
        # a baseline is measured whatever it breaks: the user asked for it as a reference
        sampled = "baseline" not in trial.user_attrs
        try:
            screening = None
            if self.screens and sampled:
                if self.policy.wanted():
                    screening = screen(self.ctx, plan, self.profiler)
                else:
                    trial.set_user_attr("screen", {"skipped": self.policy.why_not()})
            if screening is not None and screening.reason:
                self.policy.record(True, twin_s=screening.seconds)
                self._turn_away(trial, plan, screening)
            t0 = time.perf_counter()
            result = measure(self.ctx, plan, self.profiler, pruned=screening.pruned if screening else None)
            build_s = time.perf_counter() - t0
        except CANDIDATE_ERRORS as e:
            trial.set_user_attr("plan", plan.to_dict()["layers"])
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            raise
        except AutopruneError as e:  # a plan the space rejects is a bug in the space, not the candidate
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            raise
        if screening is not None:
            result = dataclasses.replace(result, stage_seconds={**result.stage_seconds, "screen": screening.seconds})
            trial.set_user_attr("screen", screening.to_dict())
        for key, value in result.user_attrs().items():
            trial.set_user_attr(key, value)
        constraints = self.constraints(result.metrics)
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        # The device's hard limits (a microcontroller's flash and SRAM): infeasible, with the reason.
        for limit in result.measurement.limits:
            trial.set_constraint(f"device_{limit.name}", limit.excess)
        reason = infeasible_reason(self.ctx.config.constraints, result.metrics, self.dense_accuracy,
                                   result.measurement.limits, self.ctx.device.name)
        if reason:
            trial.set_user_attr("infeasible_reason", reason)
        if self.screens and sampled:
            broke = (any(v > 0 for k, v in constraints.items() if k in _SCREENED_BUDGETS)
                     or any(limit.excess > 0 for limit in result.measurement.limits))
            self.policy.record(broke, twin_s=screening.seconds if screening else None, build_s=build_s)
        missing = [o for o in self.ctx.config.objectives if o not in result.metrics]
        if missing:
            reason = f"objective {missing[0]} is not available on device {self.ctx.device.name} (no meter and no power figure)"
            trial.set_user_attr("fail_reason", reason)
            raise CandidateError(reason)
        return tuple(result.metrics[o].value for o in self.ctx.config.objectives)

    def _turn_away(self, trial: optuna.Trial, plan: Plan, screening: Screening) -> None:
        """Record a plan the screen turned away, then end its trial PRUNED (nothing was trained or evaluated)."""
        trial.set_user_attr("plan", plan.to_dict()["layers"])
        trial.set_user_attr("screen", screening.to_dict())
        trial.set_user_attr("stage_seconds", {**screening.pruned.stage_seconds, "screen": round(screening.seconds, 6)})
        trial.set_user_attr("fail_reason", screening.reason)
        for name, value in screening.constraints.items():  # the sampler learns from them as from any infeasible trial
            trial.set_constraint(name, value)
        raise optuna.TrialPruned(screening.reason)
