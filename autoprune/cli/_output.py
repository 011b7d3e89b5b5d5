"""Printing results: a plain table for people, JSON for programs. Every number carries its source."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from ..metrics import METRICS, format_value, is_timing, metric_names

__all__ = ["print_json", "format_metric", "print_front"]


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def format_metric(name: str, metric: dict | None, confirmed: bool = False) -> str:
    """``value unit (source)``; ``confirmed``: the confirmation pass re-measured it."""
    if not metric:
        return "-"
    how = f"{metric['source']}, confirmed" if confirmed and is_timing(name) else metric["source"]
    return f"{format_value(name, metric['value'])} ({how})"


def print_front(points: Iterable[dict], columns: list[str], file=sys.stdout) -> None:
    """One row per front point: trial number, baseline label and each metric with its source.

    A column for a reported-only metric (``test_accuracy``) is added when a point carries it
    (the task has a test split), with a note saying what it is.
    """
    points = list(points)
    reported = [n for n in metric_names(selectable=False) if n not in columns and any(n in p["metrics"] for p in points)]
    columns = [*columns, *reported]
    rows = [["trial", "baseline", *columns]]
    for p in points:
        rows.append([str(p["number"]), p.get("baseline") or "", *(format_metric(c, p["metrics"].get(c), bool(p.get("confirmed"))) for c in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
    for name in columns:
        if name in METRICS and not METRICS[name].selectable:
            print(f"{name}: {METRICS[name].label}", file=file)
