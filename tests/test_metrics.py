"""One metric table: every reader (pick, the run's files, the report, the CLI, the config) takes a
metric's unit, direction, label, format and "is timing" from autoprune.metrics.METRICS."""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
from pathlib import Path

import optuna
import pytest

from autoprune import metrics
from autoprune.metrics import METRICS, MetricKind, metric_names

PACKAGE = Path(metrics.__file__).parent

# A metric the built-in table does not have, added in the one place a metric is defined.
PEAK = MetricKind("peak_memory_mb", "MB", "minimize", "peak memory", "{:.1f}", is_timing=True, budget=True)


def _metric(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "source": "measured", "how": "SYNTHETIC test value"}


def _study_with_peak_memory() -> optuna.Study:
    """SYNTHETIC: an in-memory study of three complete trials that record peak_memory_mb."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("config", {"objectives": ["accuracy", "latency_ms"]})  # how the runner names them
    for i, (acc, lat, mem) in enumerate([(0.90, 1.0, 30.0), (0.80, 0.5, 10.0), (0.95, 2.0, 50.0)]):
        attrs = {"metrics": {"accuracy": _metric(acc, ""), "latency_ms": _metric(lat, "ms"), "peak_memory_mb": _metric(mem, "MB")},
                 "plan": {}, "sha256": f"{i:064x}"}
        study.add_trial(optuna.trial.create_trial(values=[acc, lat], user_attrs=attrs))
    return study


@pytest.fixture
def with_peak(monkeypatch):
    monkeypatch.setitem(METRICS, PEAK.name, PEAK)


def test_a_metric_added_to_the_table_reaches_pick_outputs_report_and_cli(with_peak, tmp_path):
    from autoprune.cli._output import format_metric, print_front
    from autoprune.pick import parse_pick, select_trial
    from autoprune.report.data import build_report_data
    from autoprune.report.figures import hover_text
    from autoprune.report.source import RunSource
    from autoprune.study.outputs import write_outputs

    study = _study_with_peak_memory()

    # pick: the table's names are the known ones
    assert parse_pick("min peak_memory_mb where accuracy >= 0.85").metric == "peak_memory_mb"
    assert select_trial(study, pick="min peak_memory_mb where accuracy >= 0.85").number == 0

    # outputs: a trials.csv column (with its source) and the metric in front.json
    doc = write_outputs(study, tmp_path, ["accuracy", "latency_ms"])
    header = next(csv.reader(io.StringIO((tmp_path / "trials.csv").read_text())))
    assert {"peak_memory_mb", "peak_memory_mb_source"} <= set(header)
    assert header.index("peak_memory_mb") > header.index("latency_p90_ms")  # table order
    assert all("peak_memory_mb" in p["metrics"] for p in json.loads((tmp_path / "front.json").read_text())["points"])

    # report data: ordered by the table, drawn against accuracy (budget), front by its direction
    data = build_report_data(RunSource(tmp_path, {"storage": "memory", "config": {"objectives": ["accuracy", "latency_ms"]}}, study))
    assert list(data.trials[0].metrics) == ["accuracy", "latency_ms", "peak_memory_mb"]
    pair = next(p for p in data.pairs if p.x == "peak_memory_mb")
    assert pair.front == [1, 0, 2]  # minimise memory, maximise accuracy: none dominates another
    confirmed = dataclasses.replace(data.trials[0], confirmed=True)
    assert "peak memory: 30 MB <i>(measured, confirmed)</i>" in hover_text(confirmed)  # label, unit, is_timing

    # CLI: the table's format and unit, "confirmed" for a timing metric
    assert format_metric("peak_memory_mb", _metric(30.0, "MB"), confirmed=True) == "30.0 MB (measured, confirmed)"
    out = io.StringIO()
    print_front(doc["points"], ["accuracy", "peak_memory_mb"], file=out)
    assert "10.0 MB (measured)" in out.getvalue()


def test_changing_a_direction_in_the_table_changes_the_report_front(monkeypatch):
    """The report's 2-D fronts read the direction from the table, not a copy of it."""
    from autoprune.report.data import _pairs, TrialPoint

    def point(n: int, acc: float, size: float) -> TrialPoint:
        return TrialPoint(number=n, baseline=None, feasible=True, on_front=False,
                          metrics={"accuracy": _metric(acc, ""), "size_kb": _metric(size, "kB")}, constraints={},
                          plan_summary="", layers=[], export="", finished=None, duration_s=None, sha256=None)

    points = [point(0, 0.9, 10.0), point(1, 0.9, 20.0)]
    assert next(p for p in _pairs(points) if p.x == "size_kb").front == [0]
    monkeypatch.setitem(METRICS, "size_kb", dataclasses.replace(METRICS["size_kb"], direction="maximize"))
    assert next(p for p in _pairs(points) if p.x == "size_kb").front == [1]


def test_the_study_yaml_reads_objectives_and_budgets_from_the_table():
    from autoprune.config import Constraints, StudyConfig
    from autoprune.exceptions import ConfigError

    budgets = {f.name for f in dataclasses.fields(Constraints)} - {"max_accuracy_drop"}
    assert budgets == set(metric_names(budget=True))  # one Constraints field per budgeted metric
    with pytest.raises(ConfigError, match=r"t.yaml: objectives\[1\] must be one of \['accuracy', 'energy_mj', 'latency_ms', 'macs', 'size_kb'\], got 'latency_p90_ms'"):
        StudyConfig.from_dict({"version": 1, "name": "t", "objectives": ["accuracy", "latency_p90_ms"]}, "t.yaml")


def test_reported_only_metrics_select_nothing():
    from autoprune.exceptions import ConfigError
    from autoprune.pick import parse_pick

    for name in metric_names(selectable=False):
        kind = METRICS[name]
        assert not kind.objective and not kind.budget
        with pytest.raises(ConfigError, match="is not allowed"):
            parse_pick(f"max {name}")
    with pytest.raises(ValueError, match="reported-only"):
        MetricKind("x", "", "maximize", "x", objective=True, selectable=False)
    with pytest.raises(ValueError, match="direction must be one of"):
        MetricKind("x", "", "up", "x")


def _hand_written_tables(path: Path) -> list[str]:
    """Literals in ``path`` that restate the table: a list of metric names, a dict from metric names
    to constants (labels, formats), a direction written as a value, a MetricKind made elsewhere."""
    names = set(METRICS)
    tree = ast.parse(path.read_text(), str(path))
    allowed = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:  # the default objectives are a config default (its dataclass field), not a fact of the table
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "objectives":
                allowed.add(id(stmt.value))
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            strs = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(strs) >= 2 and set(strs) <= names:
                found.append(f"{where}: a list of metric names {strs}")
        elif isinstance(node, ast.Dict):
            pairs = [(k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value in names]
            if len(pairs) >= 2 and all(isinstance(v, ast.Constant) for _, v in pairs):
                found.append(f"{where}: a dict of metric facts {[k for k, _ in pairs]}")
            if any(isinstance(v, ast.Constant) and v.value in metrics.DIRECTIONS for v in node.values):
                found.append(f"{where}: a direction written in a dict")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "MetricKind":
            found.append(f"{where}: a MetricKind defined outside autoprune/metrics.py")
    return found


def test_no_module_but_metrics_restates_the_table():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "metrics.py" for hit in _hand_written_tables(path)]
    assert not found, "metric facts written outside autoprune/metrics.py (read METRICS instead):\n" + "\n".join(found)


def test_what_a_real_study_records_is_in_the_table_with_its_unit(tiny_run):
    seen = set()
    for t in tiny_run.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        for name, m in t.user_attrs["metrics"].items():
            assert name in METRICS, f"trial {t.number} records {name}, which the metric table does not know"
            assert m["unit"] == METRICS[name].unit, (name, m["unit"])
            seen.add(name)
    assert {"accuracy", "latency_ms", "latency_p90_ms", "size_kb", "macs"} <= seen
