"""Numbers that say how they were obtained.

Every metric autoprune prints or writes is a :class:`Metric`: a value, its unit and its
``source`` — one of ``measured`` (timed or counted on the real artifact), ``estimated``
(derived from a measurement and a datasheet figure, e.g. energy = power × latency),
``modelled`` (predicted by a cost model) or ``simulated`` (computed in a simulation of a
precision the target cannot run).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["Metric", "SOURCES", "OBJECTIVE_DIRECTIONS", "TIMING_METRICS", "REPORTED_ONLY"]

Source = Literal["measured", "estimated", "modelled", "simulated"]
SOURCES: tuple[str, ...] = ("measured", "estimated", "modelled", "simulated")

# Objectives a study may optimise, and in which direction.
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "accuracy": "maximize",
    "latency_ms": "minimize",
    "energy_mj": "minimize",
    "size_kb": "minimize",
    "macs": "minimize",
}

# Metrics that depend on when the artifact was timed (a study's confirmation pass re-measures
# them); accuracy, size and MACs do not.
TIMING_METRICS: tuple[str, ...] = ("latency_ms", "latency_p90_ms", "energy_mj")

# Metrics that are reported but never select anything (no objective, constraint or --pick
# may name them), with the label every table and hover shows: test_accuracy is measured on
# the task's test split after the search (autoprune.study.heldout).
REPORTED_ONLY: dict[str, str] = {
    "test_accuracy": "test accuracy (measured on the artifact, test split; not used to select)",
}


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
