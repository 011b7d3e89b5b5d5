"""Optional report sections: shown only when a run holds their data.

A section is a name, a title, a ``collect`` function that returns plain data from the run
(or ``None`` when the run has none) and a ``draw`` function that turns that data into
plotly figures. Features from other issues attach theirs with :func:`register_section`;
the report itself does not change.

Built in, and waiting for their data:

``sensitivity``
    Study user attribute ``sensitivity`` =
    ``{"metric": "accuracy", "source": "measured", "layers": {name: {"ratio": [...], "value": [...]}}}``
    (per-layer accuracy against pruning ratio, the others unpruned).
``predicted_vs_measured``
    Complete trials whose user attribute ``predicted`` = ``{metric: Metric dict}`` holds a cost
    model's prediction of a metric the trial also measured.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import optuna

from .source import RunSource

__all__ = ["Section", "register_section", "registered_sections", "collect_sections"]


@dataclasses.dataclass(frozen=True)
class Section:
    """An optional part of the report.

    Args:
        name: Key in ``ReportData.sections``.
        title: Heading on the page.
        collect: ``collect(source) -> data | None``; plain, JSON-serialisable data.
        draw: ``draw(data) -> [plotly figure dict]``.
        note: One line under the heading saying where the data comes from.
    """

    name: str
    title: str
    collect: Callable[[RunSource], Any]
    draw: Callable[[Any], list[dict[str, Any]]]
    note: str = ""


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> None:
    """Add (or replace, by name) an optional section; sections appear in registration order."""
    _SECTIONS[section.name] = section


def registered_sections() -> tuple[Section, ...]:
    return tuple(_SECTIONS.values())


def collect_sections(source: RunSource) -> dict[str, Any]:
    """Data of every registered section the run has data for."""
    out = {}
    for s in _SECTIONS.values():
        data = s.collect(source)
        if data:
            out[s.name] = data
    return out


def collect_sensitivity(source: RunSource) -> dict[str, Any] | None:
    """Per-layer sensitivity curves stored in the study (see the module docstring), else ``None``."""
    sens = source.study.user_attrs.get("sensitivity")
    if not isinstance(sens, dict) or not sens.get("layers"):
        return None
    return {
        "metric": sens.get("metric", "accuracy"),
        "source": sens.get("source", "measured"),
        "layers": {n: {"ratio": list(c["ratio"]), "value": list(c["value"])} for n, c in sens["layers"].items()},
    }


def collect_predicted(source: RunSource) -> dict[str, Any] | None:
    """``{metric: [{number, predicted, measured, how}]}`` for trials with a prediction and a measurement."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in source.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        metrics = t.user_attrs.get("metrics", {})
        for name, pred in (t.user_attrs.get("predicted") or {}).items():
            meas = metrics.get(name)
            if meas and meas.get("source") == "measured" and pred.get("value") is not None:
                out.setdefault(name, []).append(
                    {"number": t.number, "predicted": pred["value"], "measured": meas["value"], "unit": meas.get("unit", ""),
                     "predicted_source": pred.get("source", "modelled"), "how": pred.get("how", "")}
                )
    return out or None


def _drawn_by(name: str) -> Callable[[Any], list[dict[str, Any]]]:
    """The drawing function ``figures.<name>``, imported when first called.

    Computing the report's data never needs the drawing library, and the figures module
    (which reads this registry) is not imported by it: no import circle.
    """

    def draw(data: Any) -> list[dict[str, Any]]:
        from . import figures

        return getattr(figures, name)(data)

    return draw


register_section(Section("sensitivity", "Layer sensitivity", collect_sensitivity, _drawn_by("sensitivity_figures"),
                         "per-layer metric against pruning ratio, other layers unpruned"))
register_section(Section("predicted_vs_measured", "Predicted vs measured", collect_predicted, _drawn_by("predicted_figures"),
                         "cost-model predictions against the measurement of the same artifact"))
