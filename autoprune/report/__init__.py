"""The Pareto report: one self-contained HTML page for a study, finished or still running.

``build_report_data`` computes plain data (fronts, hypervolume, per-layer plans, facts);
``render_html`` draws it; ``write_report`` does both for a run directory; ``ReportServer``
serves it on 127.0.0.1, regenerated on every reload.

Names are imported on first use: computing the data needs optuna, never plotly or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if not name.startswith("_"):  # a submodule, as an eager package would have bound it
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
