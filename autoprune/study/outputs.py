"""What a study leaves in its run directory: run.json, trials.csv and front.json.

``front.json`` lists every non-dominated feasible trial with its metrics (each with how it
was obtained) and its full plan. Both files show the numbers the run stands by: the
confirmation pass's re-measurements where it made them (see :mod:`autoprune.study.records`),
with the search's own latency beside them in trials.csv. Where the task has a test split,
trials.csv has a ``test_accuracy`` column, filled for confirmed trials only (measured by the
pass on the rebuilt artifact, never used to select), and front.json's ``dense`` carries it
too. All files are written atomically.
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
from .records import CONFIRMATION_ATTR, TrialRecord, objective_names, pareto_front, records

__all__ = ["write_outputs", "front_trials", "front_records", "trial_row", "feasible", "RUN_FILE"]

RUN_FILE = "run.json"


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
    row["plan"] = json.dumps(ua.get("plan", {}), sort_keys=False)
    return row


def write_outputs(study: optuna.Study, out_dir: Path, objectives: list[str]) -> dict[str, Any]:
    """(Re)write trials.csv and front.json from the storage; returns the front document."""
    trials = study.get_trials(deepcopy=False)
    recs = records(study, trials=trials)
    by_number = {r.number: r for r in recs}
    names = list(dict.fromkeys([*objectives, "accuracy", "latency_ms", "latency_p90_ms", "energy_mj", "size_kb", "onnx_size_kb", "macs"]))
    if "test_accuracy" in (study.user_attrs.get("dense") or {}) or any("test_accuracy" in r.metrics for r in recs):
        names.insert(names.index("accuracy") + 1, "test_accuracy")  # the task has a test split
    rows = [trial_row(t, names, by_number.get(t.number)) for t in trials]
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(out_dir / "trials.csv", buf.getvalue())

    front = front_records(study, recs)
    confirmation = study.user_attrs.get(CONFIRMATION_ATTR)
    doc = {
        "study": study.study_name,
        "objectives": [{"name": o, "direction": d.name.lower()} for o, d in zip(objectives, study.directions)],
        "dense": study.user_attrs.get("dense"),
        "n_trials": len(trials),
        "n_complete": len(recs),
        "confirmation": None if not confirmation else {
            k: confirmation.get(k) for k in ("settings", "started", "seconds", "passes", "complete", "failed")
        } | {"n_confirmed": len(confirmation.get("trials", {}))},
        "points": [_point(r, objectives) for r in front],
    }
    atomic_write_text(out_dir / "front.json", json.dumps(doc, indent=2, default=_json_default))
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
