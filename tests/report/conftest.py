"""Report fixtures: the shared real tiny study (tests/conftest.py), its report page, and a
SYNTHETIC 200-trial study made of verbatim copies of the tiny study's real trials."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("report_render_benchmark", ROOT / "benchmarks" / "report_render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def tiny_report(tiny_run, tmp_path_factory) -> Path:
    """The report page of the real tiny study, written once."""
    from autoprune.report import write_report

    return write_report(tiny_run.out_dir, tmp_path_factory.mktemp("report") / "tiny.html")


@pytest.fixture(scope="session")
def synthetic_run(tiny_run, tmp_path_factory) -> Path:
    """SYNTHETIC: 200 trials copied verbatim from the real tiny study (benchmarks/report_render.py)."""
    return _benchmark_module().synthetic_study(tiny_run.out_dir, tmp_path_factory.mktemp("runs") / "synthetic-200", 200)


@pytest.fixture(scope="session")
def synthetic_report(synthetic_run, tmp_path_factory) -> Path:
    from autoprune.report import write_report

    return write_report(synthetic_run, tmp_path_factory.mktemp("report") / "synthetic-200.html")
