"""Device and run facts as labelled rows: what ran where, with which settings and versions.

Each row is ``{label, value, source, how}``. ``source`` is a metric's own source
(``measured``/``estimated``/``modelled``/``simulated``) for numbers the study obtained,
``setting`` for values the user or the device profile chose, and ``recorded`` for what the
storage recorded (times, counts), so the page can badge every number.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from ..metrics import metric_label
from ..study.records import CONFIRMATION_ATTR

__all__ = ["run_facts", "fact"]


def fact(label: str, value: Any, source: str | None = None, how: str = "") -> dict[str, Any]:
    """One row of facts; non-scalar values are written as compact JSON."""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, separators=(", ", ": "))
    return {"label": label, "value": value, "source": source, "how": how}


def _distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _per_trial(complete: list[optuna.trial.FrozenTrial], key: str) -> dict[str, Any]:
    """``measurement[key]`` merged over trials: one value per field, or all distinct values joined."""
    dicts = [t.user_attrs.get("measurement", {}).get(key) or {} for t in complete]
    fields = _distinct([k for d in dicts for k in d])
    out = {}
    for k in fields:
        values = _distinct([d[k] for d in dicts if k in d])
        out[k] = values[0] if len(values) == 1 else " | ".join(str(v) for v in values)
    return out


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h}h {rest // 60:02d}m {rest % 60:02d}s" if h else f"{rest // 60}m {rest % 60:02d}s"


def run_facts(study: optuna.Study, complete: list[optuna.trial.FrozenTrial], run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Facts about the device, the runtime, the task, the dense model and the run.

    Args:
        study: The study (its user attributes ``device``, ``versions``, ``task``, ``dense``, ``config``).
        complete: Its complete trials (their ``measurement`` attribute says where they were measured).
        run: The study summary from :func:`autoprune.report.data.build_report_data`.

    Returns:
        ``{group title: [row, ...]}``; a group is left out when the study holds nothing for it.
    """
    ua = study.user_attrs
    groups: dict[str, list[dict[str, Any]]] = {}

    device = ua.get("device") or {}
    if device:
        rows = [fact("name", device.get("name"), "setting"), fact("description", device.get("description"), "setting")]
        rows += [fact(f"profiler {k}", v, "setting") for k, v in (device.get("profiler") or {}).items()]
        if device.get("bits"):
            rows.append(fact("bit-widths", device["bits"], "setting"))
        power = device.get("power") or {}
        if power:
            rows.append(fact("power (W)", power.get("watts"), "setting", power.get("source", "")))
        groups["Device profile"] = rows

    where = _per_trial(complete, "device")
    if where:
        groups["Measured on"] = [fact(k, v, "recorded") for k, v in where.items()]
    settings = _per_trial(complete, "settings")
    if settings:
        groups["Measurement settings"] = [fact(k, v, "setting") for k, v in settings.items()]
    peaks = [m for t in complete if (m := t.user_attrs.get("measurement", {}).get("peak_memory_mb")) is not None]
    if peaks:
        groups.setdefault("Measured on", []).append(
            fact("peak memory (MB)", f"{min(peaks):.1f} – {max(peaks):.1f}", "measured", "resident memory of the profiling process, over trials")
        )

    if ua.get("versions"):
        groups["Runtime versions"] = [fact(k, v, "recorded") for k, v in ua["versions"].items()]
    task = ua.get("task") or {}
    if task:
        groups["Task"] = [fact("name", task.get("name"), "setting")] + [fact(k, v, "setting") for k, v in (task.get("options") or {}).items()]

    dense = ua.get("dense") or {}
    if dense:
        rows = []
        acc = dense.get("accuracy")
        if isinstance(acc, dict):
            rows.append(fact(metric_label("accuracy"), acc.get("value"), acc.get("source"), acc.get("how", "")))
        test = dense.get("test_accuracy")
        if isinstance(test, dict):
            rows.append(fact(metric_label("test_accuracy"), test.get("value"), test.get("source"), test.get("how", "")))
        if dense.get("macs") is not None:
            rows.append(fact(metric_label("macs"), dense["macs"], "measured", "counted from the dense model's layer shapes, batch 1"))
        if dense.get("size_bytes") is not None:
            rows.append(fact("size (kB)", dense["size_bytes"] / 1024, "measured", "bytes of the dense fp32 ONNX artifact / 1024"))
        groups["Dense model"] = rows

    config = ua.get("config") or {}
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(run["states"].items()))
    rows = [
        fact("study", run["name"], "recorded"),
        fact("storage", run["storage"], "recorded"),
        fact("trials", f"{run['n_trials']} ({states})" if states else "0", "recorded"),
        fact("started", run["started"], "recorded", "earliest trial start in the storage"),
        fact("last finished", run["last_finished"], "recorded", "latest trial completion in the storage"),
        fact("duration", _duration(run["duration_s"]), "recorded", "last completion minus first start"),
        fact("still running", "yes" if run["running"] else "no", "recorded"),
    ]
    search = config.get("search") or {}
    for key in ("sampler", "seed", "n_trials", "timeout_s"):
        if key in search:
            rows.append(fact(f"search {key}", search[key], "setting"))
    if config.get("constraints"):
        rows.append(fact("constraints", {k: v for k, v in config["constraints"].items() if v is not None}, "setting"))
    confirm = config.get("confirm") or {}
    if confirm:
        rows.append(fact("confirmation settings", confirm, "setting"))
    done = ua.get(CONFIRMATION_ATTR)
    if done and done.get("skipped"):
        rows.append(fact("confirmation pass", f"skipped: {done['skipped']}", "recorded", f"decided {done.get('started')}, after the search"))
    elif done:
        summary = (f"{len(done.get('trials', {}))} trial(s) re-measured in {done.get('seconds', 0):.0f} s, "
                   f"{len(done.get('failed', {}))} not confirmed; every front point confirmed: {'yes' if done.get('complete') else 'no'}")
        rows.append(fact("confirmation pass", summary, "recorded", f"started {done.get('started')}, after the search"))
    groups["Run"] = rows
    return groups
