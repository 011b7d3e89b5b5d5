"""Numbers that say how they were obtained.

Every metric autoprune prints or writes is a :class:`Metric`: a value, its unit and its
``source`` — one of ``measured`` (timed or counted on the real artifact), ``estimated``
(derived from a measurement and a datasheet figure, e.g. energy = power × latency),
``modelled`` (predicted by a cost model) or ``simulated`` (computed in a simulation of a
precision the target cannot run).

What each metric *is* (unit, which direction is better, label, whether it is a timing,
whether a study may optimise, budget or pick it) is written once, in :data:`METRICS`; the
study, pick, the run's files, the report and the CLI all read it from there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["Metric", "SOURCES", "MetricKind", "METRICS", "DIRECTIONS", "metric_names", "metric_label", "format_value",
           "is_timing", "metric_direction"]

Source = Literal["measured", "estimated", "modelled", "simulated"]
SOURCES: tuple[str, ...] = ("measured", "estimated", "modelled", "simulated")
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize")


@dataclasses.dataclass(frozen=True)
class MetricKind:
    """What one metric is: the facts every table, figure, pick and objective reads from :data:`METRICS`.

    Args:
        name: Key in every metrics dict, trials.csv column and ``--pick`` expression.
        unit: Unit written after the value (``"ms"``, ``"mJ"``, ``"kB"``; ``""``: none).
        direction: ``"maximize"`` or ``"minimize"``: which way is better.
        label: What the report's axes, hovers and tables and the CLI's notes call it.
        fmt: How printed tables write the value (a ``str.format`` field, the unit follows).
        is_timing: It depends on when the artifact was timed: the confirmation pass
            re-measures it, and a confirmed trial's value says so.
        objective: A study may optimise it (``objectives:`` in the study YAML).
        budget: ``constraints.<name>`` may cap it; the report draws accuracy against it and
            ``autoprune run`` prints it in its front table.
        selectable: ``--pick`` may name it. False: reported, never used to select anything.
    """

    name: str
    unit: str
    direction: str
    label: str
    fmt: str = "{:.4g}"
    is_timing: bool = False
    objective: bool = False
    budget: bool = False
    selectable: bool = True

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if not self.selectable and (self.objective or self.budget):
            raise ValueError(f"metric {self.name!r}: a reported-only metric cannot be an objective or have a budget")

    def format(self, value: float) -> str:
        """The value as printed tables write it, with its unit: ``"0.412 ms"``."""
        return self.fmt.format(value) + (f" {self.unit}" if self.unit else "")


# The one table of metrics, in the order tables and trials.csv list them.
METRICS: dict[str, MetricKind] = {k.name: k for k in (
    MetricKind("accuracy", "", "maximize", "accuracy", "{:.4f}", objective=True),
    # Measured on the task's test split after the search (autoprune.study.heldout): choosing by it
    # would make the test split a second validation split, so nothing selects on it.
    MetricKind("test_accuracy", "", "maximize", "test accuracy (measured on the artifact, test split; not used to select)",
               "{:.4f}", selectable=False),
    MetricKind("latency_ms", "ms", "minimize", "latency", "{:.3f}", is_timing=True, objective=True, budget=True),
    MetricKind("latency_p90_ms", "ms", "minimize", "latency p90", "{:.3f}", is_timing=True),
    MetricKind("energy_mj", "mJ", "minimize", "energy", "{:.4f}", is_timing=True, objective=True, budget=True),
    # What the target stores (estimated when packed or sparse); onnx_size_kb is the artifact's own bytes.
    MetricKind("size_kb", "kB", "minimize", "size", "{:.1f}", objective=True, budget=True),
    MetricKind("onnx_size_kb", "kB", "minimize", "ONNX size", "{:.1f}"),
    MetricKind("macs", "", "minimize", "MACs", "{:.3g}", objective=True),
)}


def metric_names(**where: bool) -> tuple[str, ...]:
    """Names in :data:`METRICS`, in table order, whose fields equal ``where``.

    e.g. ``metric_names(objective=True)``, ``metric_names(is_timing=True, budget=True)``.
    """
    return tuple(k.name for k in METRICS.values() if all(getattr(k, f) == v for f, v in where.items()))


def metric_label(name: str) -> str:
    """The metric's label; a name the table does not know is shown as it is."""
    kind = METRICS.get(name)
    return kind.label if kind else name


def format_value(name: str, value: float) -> str:
    """``value`` as printed tables write metric ``name`` (4 significant digits if the table does not know it)."""
    kind = METRICS.get(name)
    return kind.format(value) if kind else f"{value:.4g}"


def is_timing(name: str) -> bool:
    """Whether metric ``name`` depends on when it was timed (see :attr:`MetricKind.is_timing`)."""
    kind = METRICS.get(name)
    return bool(kind and kind.is_timing)


def metric_direction(name: str) -> str:
    """``"maximize"`` or ``"minimize"`` for metric ``name``.

    Raises:
        KeyError: the table does not know ``name``.
    """
    return METRICS[name].direction


@dataclasses.dataclass(frozen=True)
class Metric:
    """A value with its unit and how it was obtained.

    Args:
        value: The number.
        unit: Unit as written after the number (``"ms"``, ``"mJ"``, ``"kB"``, ``""``).
        source: ``measured``, ``estimated``, ``modelled`` or ``simulated``.
        how: One line saying how, e.g. ``"onnxruntime on 360 eval images"``.
    """

    value: float
    unit: str
    source: str
    how: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Metric source must be one of {SOURCES}, got {self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metric":
        return cls(float(d["value"]), str(d["unit"]), str(d["source"]), str(d.get("how", "")))

    def __str__(self) -> str:
        return f"{self.value:.4g}{(' ' + self.unit) if self.unit else ''} ({self.source})"
