"""Drawing: :class:`~autoprune.report.data.ReportData` in, plotly figure dicts out.

Nothing is computed here that a test of the data would need; this module only picks
traces, colours and labels. Every axis title and hover line carries the source of its
numbers (measured / estimated / modelled / simulated). Points carry their trial number in
``customdata``, which the page uses to show the trial's plan on click.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from ..metrics import is_timing, metric_label
from .sections import registered_sections

if TYPE_CHECKING:  # for annotations only: drawing takes the data, never computes it
    from .data import Pair, ReportData, TrialPoint

__all__ = ["report_figures", "pair_figure", "hypervolume_figure", "timeline_figure", "plan_figure", "hover_text",
           "sensitivity_figures", "predicted_figures"]

BLUE, ORANGE, GREY, RED = "#1f6feb", "#d9480f", "#8c959f", "#cf222e"
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), height=420, hovermode="closest")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def hover_text(p: TrialPoint) -> str:
    """The trial's metrics, each with its unit and source, and its plan summary (HTML for plotly); an infeasible trial's head says why."""
    why = f": {html.escape(p.infeasible_reason, quote=False)}" if p.infeasible_reason else ""
    head = f"<b>trial {p.number}</b>" + (f" · {p.baseline}" if p.baseline else "") + ("" if p.feasible else f" · infeasible{why}")
    lines = [head]
    for name, m in p.metrics.items():
        unit = f" {m.get('unit')}" if m.get("unit") else ""
        how = f"{m.get('source')}, confirmed" if p.confirmed and is_timing(name) else m.get("source")
        lines.append(f"{metric_label(name)}: {_fmt(m.get('value'))}{unit} <i>({how})</i>")
    lines.append(f"plan: {p.plan_summary}")
    return "<br>".join(lines)


def _axis_title(name: str, unit: str, sources: list[str]) -> str:
    unit = f" [{unit}]" if unit else ""
    return f"{metric_label(name)}{unit} — {' / '.join(sources)}"


def _trace(points: list[TrialPoint], x: str, y: str, **kw: Any) -> go.Scatter:
    return go.Scatter(
        x=[p.metrics[x]["value"] for p in points],
        y=[p.metrics[y]["value"] for p in points],
        customdata=[p.number for p in points],
        hovertext=[hover_text(p) for p in points],
        **{"hoverinfo": "text", **kw},
    )


def pair_figure(data: ReportData, pair: Pair) -> dict[str, Any]:
    """Accuracy against one cost: the 2-D front as a step line, dominated and infeasible trials faded,
    baselines as labelled diamonds."""
    x, y = pair.x, pair.y
    points = [p for p in data.trials if x in p.metrics and y in p.metrics and p.metrics[x]["value"] is not None]
    front = set(pair.front)
    searched = [p for p in points if not p.baseline]
    on_front = sorted((p for p in points if p.number in front), key=lambda p: p.metrics[x]["value"])
    unit = {n: next((p.metrics[n].get("unit", "") for p in points), "") for n in (x, y)}
    fig = go.Figure(
        [
            _trace(on_front, x, y, mode="lines", line=dict(color=BLUE, shape="hv", width=1.5), name="front", hoverinfo="skip"),
            _trace([p for p in searched if p.feasible and p.number not in front], x, y, mode="markers", name="dominated",
                   marker=dict(color=BLUE, size=8, opacity=0.25)),
            _trace([p for p in searched if not p.feasible], x, y, mode="markers", name="infeasible",
                   marker=dict(color=GREY, size=8, symbol="x", opacity=0.4)),
            _trace([p for p in searched if p.number in front], x, y, mode="markers", name="on front",
                   marker=dict(color=BLUE, size=11, line=dict(color="white", width=1))),
            _trace([p for p in points if p.baseline], x, y, mode="markers+text", name="baselines",
                   text=[p.baseline for p in points if p.baseline], textposition="top center",
                   marker=dict(color=ORANGE, size=12, symbol="diamond", line=dict(color="white", width=1))),
        ]
    )
    fig.update_layout(
        title=f"{metric_label(y)} vs {metric_label(x)}",
        xaxis_title=_axis_title(x, unit[x], pair.sources["x"]),
        yaxis_title=_axis_title(y, unit[y], pair.sources["y"]),
        clickmode="event+select",
        dragmode="select",
        **_LAYOUT,
    )
    return fig.to_plotly_json()


def hypervolume_figure(data: ReportData) -> dict[str, Any]:
    """Hypervolume of the feasible front after each complete trial."""
    hv = data.hypervolume
    fig = go.Figure(
        go.Scatter(x=[h["number"] for h in hv["history"]], y=[h["value"] for h in hv["history"]], mode="lines+markers",
                   line=dict(shape="hv", color=BLUE), marker=dict(size=4), name="hypervolume",
                   hovertemplate="after trial %{x}: %{y:.4g}<extra></extra>")
    )
    fig.update_layout(title="Hypervolume over trials", xaxis_title="trial number",
                      yaxis_title="hypervolume of " + " × ".join(hv["objectives"]), **_LAYOUT)
    return fig.to_plotly_json()


def timeline_figure(data: ReportData) -> dict[str, Any]:
    """Trials over time: finished trials counted against wall-clock time, failures marked."""
    done = sorted((t for t in data.timeline if t["finished"]), key=lambda t: t["finished"])
    ok = [(i + 1, t) for i, t in enumerate(done)]
    fig = go.Figure()
    for state, color, symbol in (("COMPLETE", BLUE, "circle"), ("FAIL", RED, "x"), ("PRUNED", GREY, "square")):
        pts = [(i, t) for i, t in ok if t["state"] == state]
        if pts:
            fig.add_trace(go.Scatter(
                x=[t["finished"] for _, t in pts], y=[i for i, _ in pts], mode="markers", name=state.lower(),
                marker=dict(color=color, symbol=symbol, size=7), customdata=[t["number"] for _, t in pts],
                hovertext=[f"trial {t['number']} {state.lower()} in {_fmt(t['duration_s'])} s" for _, t in pts], hoverinfo="text"))
    fig.update_layout(title="Trials over time (finish times recorded by the storage)", xaxis_title="finished at",
                      yaxis_title="trials finished", **_LAYOUT)
    return fig.to_plotly_json()


def plan_figure(data: ReportData) -> dict[str, Any]:
    """Empty per-layer plan bars (ratio above, bits below, layers in model order); the page fills them for a trial."""
    names = data.layer_names
    fig = go.Figure(
        [
            go.Bar(x=names, y=[None] * len(names), name="pruning ratio", marker_color=BLUE, yaxis="y",
                   hovertemplate="%{x}: ratio %{y}<extra></extra>"),
            go.Bar(x=names, y=[None] * len(names), name="bits", marker_color=ORANGE, yaxis="y2",
                   hovertemplate="%{x}: %{y} bits<extra></extra>"),
        ]
    )
    fig.update_layout(
        title="Plan of the selected trial",
        yaxis=dict(title="pruning ratio", range=[0, 1], domain=[0.55, 1]),
        yaxis2=dict(title="bits", domain=[0, 0.42], anchor="x", type="log", range=[0, 1.6]),
        xaxis=dict(title="layer (model order)", type="category", categoryorder="array", categoryarray=names),
        showlegend=False,
        **{**_LAYOUT, "height": 380},
    )
    return fig.to_plotly_json()


def sensitivity_figures(sens: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-layer sensitivity curves (section ``sensitivity``)."""
    fig = go.Figure([go.Scatter(x=c["ratio"], y=c["value"], mode="lines+markers", name=n) for n, c in sens["layers"].items()])
    fig.update_layout(title=f"{sens['metric']} against pruning ratio, one layer at a time",
                      xaxis_title="pruning ratio", yaxis_title=f"{sens['metric']} — {sens['source']}", **_LAYOUT)
    return [fig.to_plotly_json()]


def predicted_figures(pred: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Predicted against measured, one figure per metric, with the y = x line (section ``predicted_vs_measured``)."""
    figs = []
    for name, rows in pred.items():
        lo = min(min(r["predicted"], r["measured"]) for r in rows)
        hi = max(max(r["predicted"], r["measured"]) for r in rows)
        unit = f" [{rows[0]['unit']}]" if rows[0]["unit"] else ""
        fig = go.Figure([
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color=GREY, dash="dot"), name="y = x", hoverinfo="skip"),
            go.Scatter(x=[r["measured"] for r in rows], y=[r["predicted"] for r in rows], mode="markers", name="trials",
                       customdata=[r["number"] for r in rows], marker=dict(color=BLUE),
                       hovertext=[f"trial {r['number']}: predicted {_fmt(r['predicted'])} ({r['predicted_source']}), "
                                  f"measured {_fmt(r['measured'])}" for r in rows], hoverinfo="text"),
        ])
        fig.update_layout(title=f"{metric_label(name)}: predicted vs measured", xaxis_title=f"{metric_label(name)}{unit} — measured",
                          yaxis_title=f"{metric_label(name)}{unit} — {' / '.join(sorted({r['predicted_source'] for r in rows}))}", **_LAYOUT)
        figs.append(fig.to_plotly_json())
    return figs


def report_figures(data: ReportData) -> dict[str, Any]:
    """All figures of the page: ``{"pairs": [...], "hypervolume", "timeline", "plan", "sections": {name: [...]}}``."""
    return {
        "pairs": [pair_figure(data, p) for p in data.pairs],
        "hypervolume": hypervolume_figure(data) if data.hypervolume["history"] else None,
        "timeline": timeline_figure(data),
        "plan": plan_figure(data),
        "sections": {s.name: s.draw(data.sections[s.name]) for s in registered_sections() if s.name in data.sections},
    }
