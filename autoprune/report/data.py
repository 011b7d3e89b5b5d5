"""Everything the report shows, as plain data computed from a run (no drawing here).

:func:`build_report_data` turns a :class:`~autoprune.report.source.RunSource` into a
:class:`ReportData`: one :class:`TrialPoint` per complete trial (metrics with their
sources, per-layer plan rows in model order, the export command), the 2-D fronts for
accuracy against each cost, the hypervolume history, the device and run facts, and the
optional sections other features attach (:mod:`autoprune.report.sections`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import shlex
from collections import Counter
from typing import Any

import optuna

from ..metrics import METRICS, metric_direction, metric_names
from ..study.outputs import feasible, front_records
from ..study.records import TrialRecord, records
from .facts import run_facts
from ..pareto import hypervolume_history, non_dominated, reference_point, to_minimization
from .sections import collect_sections
from .source import RunSource

__all__ = ["ReportData", "TrialPoint", "Pair", "build_report_data", "layer_rows", "plan_summary", "export_command"]



@dataclasses.dataclass
class TrialPoint:
    """One complete trial as the report shows it.

    Attributes:
        number: Optuna trial number.
        baseline: Baseline label (``"dense-fp32"``, ``"uniform-0.5"``, ...) or ``None`` if searched.
        feasible: All constraints hold.
        on_front: On the study's Pareto front (feasible, non-dominated in the study objectives).
        metrics: ``{name: {value, unit, source, how}}``: the confirmation pass's where it re-measured the trial, else the search's.
        constraints: ``{name: value}``, feasible when every value is <= 0.
        plan_summary: One line summarising the plan.
        layers: Per-layer rows in model order (see :func:`layer_rows`).
        export: The ``autoprune export`` command that rebuilds this trial's artifact.
        finished: ISO time the trial completed.
        duration_s: Wall-clock seconds the trial took.
        sha256: Digest of the trial's artifact.
        confirmed: The confirmation pass re-measured its timing metrics after the search.
        infeasible_reason: Each constraint the trial breaks, its value and the limit; ``""`` when feasible.
    """

    number: int
    baseline: str | None
    feasible: bool
    on_front: bool
    metrics: dict[str, dict[str, Any]]
    constraints: dict[str, float]
    plan_summary: str
    layers: list[dict[str, Any]]
    export: str
    finished: str | None
    duration_s: float | None
    sha256: str | None
    confirmed: bool = False
    infeasible_reason: str = ""


@dataclasses.dataclass
class Pair:
    """Accuracy against one cost: which trials are non-dominated in just these two.

    Attributes:
        x: Cost metric name (one with a budget in :data:`~autoprune.metrics.METRICS`: ``latency_ms``, ``energy_mj``, ``size_kb``).
        y: ``"accuracy"``.
        front: Numbers of feasible trials non-dominated in (x, y), by ascending x.
        sources: Sources seen for x and y over the trials, e.g. ``{"x": ["estimated"], "y": ["measured"]}``.
    """

    x: str
    y: str
    front: list[int]
    sources: dict[str, list[str]]


@dataclasses.dataclass
class ReportData:
    """All the report's content, JSON-serialisable through :meth:`to_dict`.

    Attributes:
        study: Name, storage, state counts, start/end times, duration, whether still running.
        objectives: ``[{name, direction}]`` of the study.
        trials: Complete trials, by number.
        failed: ``[{number, state, reason}]`` for trials that failed or were pruned.
        pairs: Accuracy against each available cost.
        hypervolume: ``{objectives, directions, reference_point, sources, history: [{number, value}]}``.
        timeline: ``[{number, state, started, finished, duration_s}]`` for every trial.
        layer_names: Layer names in model order (the plan bars' axis).
        facts: ``{group title: [{label, value, source?, how?}]}``: device, runtime, task, dense model, run.
        sections: Optional sections' data by name, present only when the run has that data.
    """

    study: dict[str, Any]
    objectives: list[dict[str, str]]
    trials: list[TrialPoint]
    failed: list[dict[str, Any]]
    pairs: list[Pair]
    hypervolume: dict[str, Any]
    timeline: list[dict[str, Any]]
    layer_names: list[str]
    facts: dict[str, list[dict[str, Any]]]
    sections: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _finite(dataclasses.asdict(self))

    def trial(self, number: int) -> TrialPoint:
        """The complete trial with this number (KeyError if none)."""
        for t in self.trials:
            if t.number == number:
                return t
        raise KeyError(number)


def _finite(o: Any) -> Any:
    # JSON has no NaN/inf; the page shows null as "n/a".
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def layer_rows(plan: dict[str, dict[str, Any]], space: dict[str, Any], channels: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """A plan as one row per layer, in model order.

    Args:
        plan: ``{layer: {ratio?, bits?}}`` as a trial stored it.
        space: The study's ``space`` attribute (``layers`` and ``groups`` in model order).
        channels: ``{group: [before, after]}`` as the trial stored it.

    Returns:
        ``[{name, kind, ratio, bits, channels_before, channels_after, macs_share}]``; ``ratio`` is
        ``None`` for a layer that is not pruned (excluded or not a group leader), ``bits`` is
        ``None`` when the plan leaves the layer's precision alone. Plan layers the space does not
        list (should not happen) follow at the end, so nothing is hidden.
    """
    channels = channels or {}
    names = [layer["name"] for layer in space.get("layers", [])]
    names += [g["name"] for g in space.get("groups", []) if g["name"] not in names]
    names += [n for n in plan if n not in names]
    kinds = {item["name"]: item.get("kind", "") for item in [*space.get("groups", []), *space.get("layers", [])]}
    shares = {layer["name"]: layer.get("macs_share") for layer in space.get("layers", [])}
    rows = []
    for name in names:
        entry = plan.get(name, {})
        before, after = channels.get(name, (None, None))
        rows.append(
            {
                "name": name,
                "kind": kinds.get(name, ""),
                "ratio": entry.get("ratio"),
                "bits": entry.get("bits"),
                "channels_before": before,
                "channels_after": after,
                "macs_share": shares.get(name),
            }
        )
    return rows


def plan_summary(plan: dict[str, dict[str, Any]]) -> str:
    """One line: mean and max pruning ratio over pruned groups, and how many layers at each bit-width."""
    ratios = [v["ratio"] for v in plan.values() if v.get("ratio") is not None]
    bits = Counter(v["bits"] for v in plan.values() if v.get("bits") is not None)
    parts = []
    if ratios:
        parts.append(f"ratio mean {sum(ratios) / len(ratios):.2f}, max {max(ratios):.2f} over {len(ratios)} groups")
    if bits:
        parts.append("bits " + ", ".join(f"{n}×{b}" for b, n in sorted(bits.items())))
    return "; ".join(parts) or "no change"


def export_command(run_dir: str, number: int) -> str:
    """The command a user copies to rebuild trial ``number``'s artifact."""
    return f"autoprune export {shlex.quote(run_dir)} --trial {number}"


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def _trial_point(r: TrialRecord, front: set[int], space: dict[str, Any], run_dir: str) -> TrialPoint:
    t = r.trial
    ua = t.user_attrs
    metrics = r.metrics
    ordered = {k: metrics[k] for k in METRICS if k in metrics} | {k: v for k, v in metrics.items() if k not in METRICS}
    plan = ua.get("plan", {})
    return TrialPoint(
        number=t.number,
        baseline=ua.get("baseline"),
        feasible=r.feasible,
        on_front=t.number in front,
        metrics=ordered,
        constraints=r.constraints,
        plan_summary=plan_summary(plan),
        layers=layer_rows(plan, space, ua.get("channels")),
        export=export_command(run_dir, t.number),
        finished=_iso(t.datetime_complete),
        duration_s=t.duration.total_seconds() if t.duration else None,
        sha256=ua.get("sha256"),
        confirmed=r.confirmed,
        infeasible_reason=r.infeasible_reason,
    )


def _value(p: TrialPoint, name: str) -> float | None:
    m = p.metrics.get(name)
    v = None if m is None else m.get("value")
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _pairs(points: list[TrialPoint]) -> list[Pair]:
    pairs = []
    for x in metric_names(budget=True):  # accuracy against each cost a study may budget
        both = [p for p in points if _value(p, x) is not None and _value(p, "accuracy") is not None]
        if not both:
            continue
        ok = [p for p in both if p.feasible]
        vectors = [to_minimization((_value(p, x), _value(p, "accuracy")), (metric_direction(x), metric_direction("accuracy"))) for p in ok]
        front = sorted((ok[i] for i in non_dominated(vectors)), key=lambda p: (_value(p, x), p.number))
        sources = {axis: sorted({p.metrics[name]["source"] for p in both}) for axis, name in (("x", x), ("y", "accuracy"))}
        pairs.append(Pair(x, "accuracy", [p.number for p in front], sources))
    return pairs


def _hypervolume(study: optuna.Study, complete: list[optuna.trial.FrozenTrial], names: list[str]) -> dict[str, Any]:
    directions = [d.name.lower() for d in study.directions]
    usable = [t for t in complete if t.values is not None and all(math.isfinite(v) for v in t.values)]
    result: dict[str, Any] = {"objectives": names, "directions": directions, "reference_point": None, "history": [], "sources": {}}
    if not usable:
        return result
    vectors = [to_minimization(t.values, directions) for t in usable]
    ref = reference_point(vectors)
    history = hypervolume_history([v if feasible(t) else None for t, v in zip(usable, vectors)], ref)
    result["reference_point"] = list(to_minimization(ref, directions))  # back in the objectives' own sense
    result["history"] = [{"number": t.number, "value": h} for t, h in zip(usable, history)]
    result["sources"] = {n: sorted({t.user_attrs.get("metrics", {}).get(n, {}).get("source", "unknown") for t in usable}) for n in names}
    return result


def _study_facts(source: RunSource, trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    states = Counter(t.state.name for t in trials)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    first, last = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "name": source.study.study_name,
        "storage": source.run["storage"],
        "run_dir": str(source.run_dir),
        "n_trials": len(trials),
        "states": dict(states),
        "running": states.get("RUNNING", 0) > 0 or states.get("WAITING", 0) > 0,
        "started": _iso(first),
        "last_finished": _iso(last),
        "duration_s": (last - first).total_seconds() if first and last else None,
        "generated": _iso(dt.datetime.now()),
    }


def build_report_data(source: RunSource) -> ReportData:
    """Compute everything the report shows from a run (finished or still running).

    Args:
        source: The run, from :func:`~autoprune.report.source.open_run`.

    Returns:
        The report's data; RUNNING and WAITING trials are counted but not drawn, FAIL and
        PRUNED ones are listed with their reason.
    """
    study = source.study
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    names = list(source.run.get("config", {}).get("objectives") or study.user_attrs.get("config", {}).get("objectives") or [])
    if len(names) != len(study.directions):
        names = [f"objective {i}" for i in range(len(study.directions))]
    space = study.user_attrs.get("space", {})
    recs = records(study, trials=complete)
    front = {r.number for r in front_records(study, recs)}
    points = [_trial_point(r, front, space, str(source.run_dir)) for r in recs]
    failed = [
        {"number": t.number, "state": t.state.name, "reason": t.user_attrs.get("fail_reason", "")}
        for t in trials
        if t.state in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
    ]
    timeline = [
        {"number": t.number, "state": t.state.name, "started": _iso(t.datetime_start), "finished": _iso(t.datetime_complete),
         "duration_s": t.duration.total_seconds() if t.duration else None}
        for t in trials
    ]
    facts = _study_facts(source, trials)
    return ReportData(
        study=facts,
        objectives=[{"name": n, "direction": d.name.lower()} for n, d in zip(names, study.directions)],
        trials=points,
        failed=failed,
        pairs=_pairs(points),
        hypervolume=_hypervolume(study, complete, names),
        timeline=timeline,
        layer_names=[row["name"] for row in layer_rows({}, space)],
        facts=run_facts(study, complete, facts),
        sections=collect_sections(source),
    )
