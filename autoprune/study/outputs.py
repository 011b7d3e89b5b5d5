"""What a study leaves in its run directory: run.json, trials.csv and front.json.

``front.json`` lists every non-dominated feasible trial (Optuna's ``best_trials``) with its
metrics (each with how it was obtained) and its full plan. All files are written atomically.
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

__all__ = ["write_outputs", "front_trials", "trial_row", "feasible", "RUN_FILE"]

RUN_FILE = "run.json"


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    """All constraint values set with ``Trial.set_constraint`` are <= 0 (true when there are none)."""
    return all(v <= 0 for v in (t.constraints or {}).values())


def front_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Non-dominated, feasible, complete trials, by trial number."""
    try:
        best = study.best_trials
    except ValueError:
        return []
    return sorted((t for t in best if feasible(t)), key=lambda t: t.number)


def _value(t: optuna.trial.FrozenTrial, name: str) -> float | None:
    m = t.user_attrs.get("metrics", {}).get(name)
    return None if m is None else m["value"]


def trial_row(t: optuna.trial.FrozenTrial, metric_names: list[str]) -> dict[str, Any]:
    ua = t.user_attrs
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "baseline": ua.get("baseline", ""),
        "feasible": feasible(t) if t.state == optuna.trial.TrialState.COMPLETE else "",
    }
    for name in metric_names:
        m = ua.get("metrics", {}).get(name)
        row[name] = "" if m is None else m["value"]
        row[f"{name}_source"] = "" if m is None else m["source"]
    row["duration_s"] = round(t.duration.total_seconds(), 3) if t.duration else ""
    row["sha256"] = ua.get("sha256", "")
    row["fail_reason"] = ua.get("fail_reason", "")
    row["plan"] = json.dumps(ua.get("plan", {}), sort_keys=False)
    return row


def write_outputs(study: optuna.Study, out_dir: Path, objectives: list[str]) -> dict[str, Any]:
    """(Re)write trials.csv and front.json from the storage; returns the front document."""
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys([*objectives, "accuracy", "latency_ms", "latency_p90_ms", "energy_mj", "size_kb", "onnx_size_kb", "macs"]))
    rows = [trial_row(t, names) for t in trials]
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(out_dir / "trials.csv", buf.getvalue())

    front = front_trials(study)
    doc = {
        "study": study.study_name,
        "objectives": [{"name": o, "direction": d.name.lower()} for o, d in zip(objectives, study.directions)],
        "dense": study.user_attrs.get("dense"),
        "n_trials": len(trials),
        "n_complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        "points": [
            {
                "number": t.number,
                "baseline": t.user_attrs.get("baseline"),
                "values": {o: v for o, v in zip(objectives, t.values)},
                "metrics": t.user_attrs.get("metrics", {}),
                "measurement_settings": t.user_attrs.get("measurement", {}).get("settings", {}),
                "latency_stats": t.user_attrs.get("measurement", {}).get("latency", {}),
                "constraints": dict(t.constraints or {}),
                "sha256": t.user_attrs.get("sha256"),
                "plan": t.user_attrs.get("plan", {}),
            }
            for t in front
        ],
    }
    atomic_write_text(out_dir / "front.json", json.dumps(doc, indent=2, default=_json_default))
    return doc


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
