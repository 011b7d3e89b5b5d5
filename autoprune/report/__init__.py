"""The Pareto report: one self-contained HTML page for a study, finished or still running.

``build_report_data`` computes plain data (fronts, hypervolume, per-layer plans, facts);
``render_html`` draws it; ``write_report`` does both for a run directory; ``ReportServer``
serves it on 127.0.0.1, regenerated on every reload.
"""

from .data import Pair, ReportData, TrialPoint, build_report_data, layer_rows, plan_summary
from .page import render_html
from ..pareto import hypervolume, hypervolume_history, non_dominated, reference_point
from .sections import Section, register_section
from .source import RunSource, open_run
from .write import report_html, write_report

__all__ = [
    "open_run", "RunSource", "build_report_data", "ReportData", "TrialPoint", "Pair", "layer_rows", "plan_summary",
    "render_html", "report_html", "write_report", "hypervolume", "hypervolume_history", "non_dominated", "reference_point",
    "Section", "register_section",
]
