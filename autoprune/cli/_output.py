"""Printing results: a plain table for people, JSON for programs. Every number carries its source."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from ..metrics import REPORTED_ONLY, TIMING_METRICS

__all__ = ["print_json", "format_metric", "print_front"]

_FMT = {"accuracy": "{:.4f}", "test_accuracy": "{:.4f}", "latency_ms": "{:.3f} ms", "latency_p90_ms": "{:.3f} ms", "energy_mj": "{:.4f} mJ", "size_kb": "{:.1f} kB", "macs": "{:.3g}"}


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def format_metric(name: str, metric: dict | None, confirmed: bool = False) -> str:
    """``value unit (source)``; ``confirmed``: the confirmation pass re-measured it."""
    if not metric:
        return "-"
    how = f"{metric['source']}, confirmed" if confirmed and name in TIMING_METRICS else metric["source"]
    return f"{_FMT.get(name, '{:.4g}').format(metric['value'])} ({how})"


def print_front(points: Iterable[dict], columns: list[str], file=sys.stdout) -> None:
    """One row per front point: trial number, baseline label and each metric with its source.

    A ``test_accuracy`` column is added when a point carries it (the task has a test split).
    """
    points = list(points)
    if "test_accuracy" not in columns and any("test_accuracy" in p["metrics"] for p in points):
        columns = [*columns, "test_accuracy"]
    rows = [["trial", "baseline", *columns]]
    for p in points:
        rows.append([str(p["number"]), p.get("baseline") or "", *(format_metric(c, p["metrics"].get(c), bool(p.get("confirmed"))) for c in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
    if "test_accuracy" in columns:
        print(f"test_accuracy: {REPORTED_ONLY['test_accuracy']}", file=file)
