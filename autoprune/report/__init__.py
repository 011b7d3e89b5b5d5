"""The Pareto report: one self-contained HTML page for a study, finished or still running.

``build_report_data`` computes plain data (fronts, hypervolume, per-layer plans, facts);
``render_html`` draws it; ``write_report`` does both for a run directory; ``ReportServer``
serves it on 127.0.0.1, regenerated on every reload.

Names are imported on first use: computing the data needs optuna, never plotly or torch.
"""

from __future__ import annotations

from .._lazy import lazy_names

_LAZY = {
    "open_run": ".source",
    "RunSource": ".source",
    "build_report_data": ".data",
    "ReportData": ".data",
    "TrialPoint": ".data",
    "Pair": ".data",
    "layer_rows": ".data",
    "plan_summary": ".data",
    "render_html": ".page",
    "report_html": ".write",
    "write_report": ".write",
    "hypervolume": "..pareto",
    "hypervolume_history": "..pareto",
    "non_dominated": "..pareto",
    "reference_point": "..pareto",
    "Section": ".sections",
    "register_section": ".sections",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
