"""What a study leaves in its run directory: run.json, trials.csv and front.json.

``front.json`` lists every non-dominated feasible trial with its metrics (each with how it
was obtained) and its full plan. Both files show the numbers the run stands by: the
confirmation pass's re-measurements where it made them (see :mod:`autoprune.study.records`),
with the search's own latency beside them in trials.csv. Where the task has a test split,
trials.csv has a ``test_accuracy`` column, filled for confirmed trials only (measured by the
pass on the rebuilt artifact, never used to select), and front.json's ``dense`` carries it
too. An infeasible trial's ``infeasible_reason`` names each constraint it breaks, the value
and the limit (empty for a feasible one). All files are written atomically; while a search runs, trials.csv grows by whole
appended rows instead (:mod:`autoprune.study.bookkeeping`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import optuna

from .._schema import atomic_write_text
from ..metrics import metric_names as names_in_table  # trial_row's argument is metric_names
from .records import CONFIRMATION_ATTR, TrialRecord, objective_names, pareto_front, records

__all__ = [
    "write_outputs", "front_trials", "front_records", "trial_row", "metric_columns", "csv_text", "front_document", "point_json", "front_json",
    "feasible", "RUN_FILE",
]

RUN_FILE = "run.json"
_POINT_INDENT = " " * 4  # front.json is indented by 2; a point sits two levels deep
_EMPTY_POINTS_TAIL = '"points": []\n}'


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    """All constraint values set with ``Trial.set_constraint`` are <= 0 (true when there are none)."""
    return all(v <= 0 for v in (t.constraints or {}).values())


def front_records(study: optuna.Study, recs: list[TrialRecord] | None = None) -> list[TrialRecord]:
    """Non-dominated, feasible, complete trials as records (confirmed numbers where there are), by number."""
    recs = records(study) if recs is None else recs
    return pareto_front(recs, objective_names(study), [d.name.lower() for d in study.directions])


def front_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Optuna trials of :func:`front_records`."""
    return [r.trial for r in front_records(study)]


def trial_row(t: optuna.trial.FrozenTrial, metric_names: list[str], record: TrialRecord | None = None) -> dict[str, Any]:
    """One trials.csv row; ``record`` (complete trials) supplies confirmed metrics and feasibility."""
    ua = t.user_attrs
    metrics = record.metrics if record is not None else ua.get("metrics", {})
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "baseline": ua.get("baseline", ""),
        "feasible": record.feasible if record is not None else "",
        "confirmed": record.confirmed if record is not None else "",
    }
    for name in metric_names:
        m = metrics.get(name)
        row[name] = "" if m is None else m["value"]
        row[f"{name}_source"] = "" if m is None else m["source"]
    search = ua.get("metrics", {}).get("latency_ms")
    row["latency_ms_search"] = "" if search is None else search["value"]
    row["duration_s"] = round(t.duration.total_seconds(), 3) if t.duration else ""
    row["sha256"] = ua.get("sha256", "")
    row["fail_reason"] = ua.get("fail_reason", "")
    row["infeasible_reason"] = record.infeasible_reason if record is not None else ""
    row["plan"] = json.dumps(ua.get("plan", {}), sort_keys=False)
    return row


def metric_columns(objectives: list[str], dense: dict[str, Any] | None, recs: list[TrialRecord]) -> list[str]:
    """The metric columns of trials.csv: the objectives, the usual metrics, and ``test_accuracy`` where the task has a test split."""
    names = list(dict.fromkeys([*objectives, *names_in_table(selectable=True)]))
    for name in names_in_table(selectable=False):  # reported only (test_accuracy): a column where the run has it
        if name in (dense or {}) or any(name in r.metrics for r in recs):
            names.insert(names.index("accuracy") + 1, name)
    return names


def csv_text(rows: list[dict[str, Any]], header: bool = True) -> str:
    """``rows`` (see :func:`trial_row`) as CSV text, with the header line unless ``header`` is False; "" for no rows."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        if header:
            w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def front_document(
    study_name: str,
    objectives: list[str],
    directions: list[str],
    front: list[TrialRecord],
    *,
    dense: dict[str, Any] | None,
    confirmation: dict[str, Any] | None,
    n_trials: int,
    n_complete: int,
) -> dict[str, Any]:
    """The front.json document.

    Args:
        study_name: The study's name.
        objectives: Objective names, in the order of ``directions``.
        directions: ``"minimize"``/``"maximize"`` per objective.
        front: The front's records, by trial number (see :func:`front_records`).
        dense: The study's ``dense`` user attr (the dense fp32 reference).
        confirmation: The study's ``confirmation`` user attr, if the pass ran.
        n_trials: Trials in the study, whatever their state.
        n_complete: Complete trials.
    """
    return {
        "study": study_name,
        "objectives": [{"name": o, "direction": d} for o, d in zip(objectives, directions)],
        "dense": dense,
        "n_trials": n_trials,
        "n_complete": n_complete,
        "confirmation": None if not confirmation else {
            k: confirmation.get(k) for k in ("settings", "started", "seconds", "passes", "complete", "failed", "skipped")
        } | {"n_confirmed": len(confirmation.get("trials", {}))},  # skipped: why nothing was confirmed (None: the pass ran)
        "points": [_point(r, objectives) for r in front],
    }


def point_json(r: TrialRecord, objectives: list[str]) -> str:
    """One front point's text as it sits in front.json's ``points`` (indented for that place)."""
    return _point_text(_point(r, objectives))


def _point_text(point: dict[str, Any]) -> str:
    text = json.dumps(point, indent=2, default=_json_default)
    return "\n".join(_POINT_INDENT + line for line in text.split("\n"))  # JSON escapes newlines inside strings


def front_json(doc: dict[str, Any], points: list[str] | None = None) -> str:
    """The text of front.json: ``json.dumps(doc, indent=2)``, from points rendered once where the caller keeps them.

    Args:
        doc: The document (see :func:`front_document`).
        points: ``doc``'s points as :func:`point_json` renders them, in order; None: render
            ``doc["points"]`` here. A writer that rewrites the file after every trial keeps
            them, so that each point is rendered once, not once per trial.
    """
    if points is None:
        points = [_point_text(p) for p in doc["points"]]
    head = json.dumps({**doc, "points": []}, indent=2, default=_json_default)
    if not head.endswith(_EMPTY_POINTS_TAIL):
        raise ValueError("front.json's points must be its last key")
    if not points:
        return head
    return head[: -len(_EMPTY_POINTS_TAIL)] + '"points": [\n' + ",\n".join(points) + "\n  ]\n}"


def write_outputs(study: optuna.Study, out_dir: Path, objectives: list[str]) -> dict[str, Any]:
    """(Re)write trials.csv and front.json from the storage; returns the front document."""
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    recs = records(study, trials=trials)
    by_number = {r.number: r for r in recs}
    names = metric_columns(objectives, attrs.get("dense"), recs)
    atomic_write_text(out_dir / "trials.csv", csv_text([trial_row(t, names, by_number.get(t.number)) for t in trials]))

    directions = [d.name.lower() for d in study.directions]
    doc = front_document(
        study.study_name, objectives, directions, front_records(study, recs),
        dense=attrs.get("dense"), confirmation=attrs.get(CONFIRMATION_ATTR), n_trials=len(trials), n_complete=len(recs),
    )
    atomic_write_text(out_dir / "front.json", front_json(doc))
    return doc


def _point(r: TrialRecord, objectives: list[str]) -> dict[str, Any]:
    ua = r.trial.user_attrs
    return {
        "number": r.number,
        "baseline": r.baseline,
        "values": dict(zip(objectives, r.values(objectives))),
        "metrics": r.metrics,
        "confirmed": r.confirmed,
        "search_metrics": r.search_metrics,
        "confirmation": r.confirmation or None,
        "measurement_settings": ua.get("measurement", {}).get("settings", {}),
        "search_latency_stats": ua.get("measurement", {}).get("latency", {}),  # the search window's; confirmed: see confirmation
        "constraints": r.constraints,
        "sha256": ua.get("sha256"),
        "plan": ua.get("plan", {}),
    }


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
