"""Run directory in, HTML file out."""

from __future__ import annotations

import os
from pathlib import Path

from .._schema import atomic_write_text
from .data import build_report_data
from .page import render_html
from .source import open_run

__all__ = ["report_html", "write_report"]


def report_html(run_dir: str | os.PathLike) -> str:
    """The report page of the run in ``run_dir``, read from its storage now.

    Raises:
        ConfigError: ``run_dir`` is not a run directory (see :func:`~autoprune.report.source.open_run`).
    """
    return render_html(build_report_data(open_run(run_dir)))


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``), atomically.

    Returns:
        The path written.
    """
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    text = report_html(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
