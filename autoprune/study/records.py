"""Complete trials as the run reports them: the search's numbers, or the confirmation pass's.

An Optuna trial is immutable once complete, so the confirmation pass
(:mod:`autoprune.study.confirm`) keeps its re-measurements in the study's user attrs
(``confirmation``) instead. A :class:`TrialRecord` merges the two: its ``metrics`` and
``constraints`` are the confirmed ones where the pass re-measured the trial (and the
artifact's sha256 still matches), the search's otherwise, and ``search_metrics`` keeps
the numbers they replaced. The front, trials.csv, export and the report all read records,
so what they show is one thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from ..pareto import non_dominated, to_minimization

__all__ = ["TrialRecord", "record", "records", "confirmation_entries", "with_confirmations", "pareto_front", "objective_names", "CONFIRMATION_ATTR"]

CONFIRMATION_ATTR = "confirmation"
_COMPLETE = optuna.trial.TrialState.COMPLETE


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One complete trial with the metrics the run stands by.

    Attributes:
        trial: The Optuna trial (its values and user attrs are the search's measurement).
        metrics: ``{name: {value, unit, source, how}}``, confirmed ones replacing the search's.
        constraints: ``{name: value}``, feasible when every value is <= 0, recomputed from
            confirmed metrics where they changed.
        confirmed: The confirmation pass re-measured this trial.
        search_metrics: The search's own metrics that ``metrics`` replaced (empty if none).
        confirmation: The pass's statistics for this trial (round medians, their CV), if confirmed.
        infeasible_reason: One line naming each constraint the trial breaks, its value and the
            limit (see :func:`~autoprune.study.objective.infeasible_reason`); ``""`` when feasible.
    """

    trial: optuna.trial.FrozenTrial
    metrics: dict[str, dict[str, Any]]
    constraints: dict[str, float]
    confirmed: bool = False
    search_metrics: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    confirmation: dict[str, Any] = dataclasses.field(default_factory=dict)
    infeasible_reason: str = ""

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def baseline(self) -> str | None:
        return self.trial.user_attrs.get("baseline")

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())

    def value(self, name: str) -> float | None:
        m = self.metrics.get(name)
        return None if m is None else m["value"]

    def values(self, objectives: list[str]) -> tuple[float, ...]:
        """The objective values in the order of ``objectives`` (the study's)."""
        return tuple(self.metrics[o]["value"] for o in objectives)


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names (set by the runner), in the order of its directions."""
    names = study.metric_names or study.user_attrs.get("config", {}).get("objectives") or []
    if len(names) != len(study.directions):
        raise ValueError(f"study {study.study_name!r} does not name its {len(study.directions)} objective(s)")
    return list(names)


def _apply(r: TrialRecord, entry: dict[str, Any] | None) -> TrialRecord:
    if entry and entry.get("sha256") == r.trial.user_attrs.get("sha256"):
        r = dataclasses.replace(
            r,
            metrics={**r.metrics, **entry["metrics"]},
            constraints={**r.constraints, **entry.get("constraints", {})},
            confirmed=True,
            search_metrics={k: r.metrics[k] for k in entry["metrics"] if k in r.metrics},
            confirmation={k: v for k, v in entry.items() if k not in ("sha256", "metrics", "constraints", "infeasible_reason")},
            infeasible_reason=entry.get("infeasible_reason", r.infeasible_reason),  # the pass's, from its constraints
        )
    return dataclasses.replace(r, infeasible_reason=_reason(r))


def _reason(r: TrialRecord) -> str:
    """``r``'s recorded reason; for a trial stored without one (an older run), its broken constraints by name."""
    if r.feasible:
        return ""
    return r.infeasible_reason or "; ".join(f"{k} exceeds its limit by {v:.6g}" for k, v in r.constraints.items() if v > 0)


def with_confirmations(recs: list[TrialRecord], entries: dict[str, dict[str, Any]]) -> list[TrialRecord]:
    """``recs`` with the confirmation entries (``{"<trial number>": entry}``) merged in."""
    return [_apply(r, entries.get(str(r.number))) for r in recs]


def confirmation_entries(study_user_attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The confirmation pass's per-trial entries (``{"<trial number>": entry}``) in a study's user attrs."""
    return (study_user_attrs.get(CONFIRMATION_ATTR) or {}).get("trials", {})


def record(trial: optuna.trial.FrozenTrial, entries: dict[str, dict[str, Any]] | None = None) -> TrialRecord:
    """One complete trial as a record, with its confirmation entry merged in where ``entries`` has one.

    Args:
        trial: A complete trial.
        entries: The confirmation pass's entries (see :func:`confirmation_entries`); None: the search's numbers only.
    """
    base = TrialRecord(trial, dict(trial.user_attrs.get("metrics", {})), dict(trial.constraints or {}),
                       infeasible_reason=trial.user_attrs.get("infeasible_reason", ""))
    return _apply(base, (entries or {}).get(str(trial.number)))


def records(study: optuna.Study, *, confirmed: bool = True, trials: list[optuna.trial.FrozenTrial] | None = None) -> list[TrialRecord]:
    """Every complete trial of ``study`` as a record, by trial number.

    Args:
        study: The study.
        confirmed: Merge the confirmation pass's re-measurements (False: the search's numbers only).
        trials: The study's trials, when the caller already holds them.
    """
    trials = trials if trials is not None else study.get_trials(deepcopy=False, states=(_COMPLETE,))
    entries = confirmation_entries(study.user_attrs) if confirmed else None
    return [record(t, entries) for t in trials if t.state == _COMPLETE]


def pareto_front(recs: list[TrialRecord], objectives: list[str], directions: list[str]) -> list[TrialRecord]:
    """Feasible records that no other feasible record dominates in ``objectives``, by trial number.

    Args:
        recs: Records (see :func:`records`).
        objectives: Objective names.
        directions: ``"minimize"``/``"maximize"`` per objective.
    """
    ok = [r for r in recs if r.feasible and all(o in r.metrics for o in objectives)]
    vectors = [to_minimization(r.values(objectives), directions) for r in ok]
    return sorted((ok[i] for i in non_dominated(vectors)), key=lambda r: r.number)
