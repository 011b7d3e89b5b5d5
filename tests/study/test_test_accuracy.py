"""test_accuracy: measured on the confirmed and exported artifacts where the task has a test split, never used to select.

The study is real (the tiny digits CNN, onnxruntime, SQLite); its task is digits with the
eval split cut in two: the first half validates (the search selects on it), the second half
is the test split. The task records, at each ``test_data()`` call, how many trials the study
had finished, so the tests can show the test split was never read while the sampler ran.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil

import optuna
import pytest

from autoprune import tasks
from autoprune.cli._output import print_front
from autoprune.export import export_trial, select_trial
from autoprune.metrics import metric_label
from autoprune.report import build_report_data, open_run
from autoprune.report.figures import hover_text
from autoprune.study import run_study
from autoprune.study.heldout import TEST_SPLIT
from autoprune.study.records import CONFIRMATION_ATTR, records
from autoprune.tasks.digits import DigitsTask

N_TRIALS = 6
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
WATCH: dict = {"study": None, "storage": None, "calls": []}


def _finished_trials() -> int:
    study = optuna.load_study(study_name=WATCH["study"], storage=WATCH["storage"])
    return sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))


class SplitDigits(DigitsTask):
    """Digits whose eval split is halved: the first half validates, the second half is the test split."""

    name = "digits-split"

    @property
    def eval_description(self) -> str:
        return "first half of the digits eval split"

    def _halves(self):
        X, y = self._data[2], self._data[3]
        h = len(y) // 2
        return (X[:h], y[:h]), (X[h:], y[h:])

    def eval_data(self):
        return self._halves()[0]

    def test_data(self):
        WATCH["calls"].append(_finished_trials())
        return self._halves()[1]


@pytest.fixture(scope="module")
def split_run(tmp_path_factory, tiny_config):
    tasks.register("digits-split", SplitDigits)
    out = tmp_path_factory.mktemp("split") / "run"
    out.mkdir()
    WATCH.update(study="split", storage=f"sqlite:///{(out / 'study.db').resolve()}", calls=[])
    cfg = dataclasses.replace(tiny_config, name="split", task="digits-split",
                              search=dataclasses.replace(tiny_config.search, n_trials=N_TRIALS))
    yield run_study(cfg, out, progress=False, log=lambda m: None)
    tasks.TASKS.pop("digits-split", None)


def _is_test_metric(m: dict) -> bool:
    return m["source"] == "measured" and TEST_SPLIT in m["how"] and "of task digits-split" in m["how"]


def test_the_test_split_is_read_only_after_the_search(split_run):
    assert WATCH["calls"] and all(n == N_TRIALS for n in WATCH["calls"])  # never while trials were being chosen
    complete = split_run.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == N_TRIALS
    for t in complete:  # what the sampler sees: values, params, constraints; none of them is test_accuracy
        assert "test_accuracy" not in json.dumps(t.user_attrs) and TEST_SPLIT not in json.dumps(t.user_attrs)
        assert t.values == [t.user_attrs["metrics"]["accuracy"]["value"], t.user_attrs["metrics"]["latency_ms"]["value"]]
        assert "test_accuracy" not in json.dumps(t.system_attrs)
        assert "first half of the digits eval split" in t.user_attrs["metrics"]["accuracy"]["how"]


def test_confirmed_front_points_and_the_dense_reference_carry_test_accuracy(split_run):
    front = json.loads((split_run.out_dir / "front.json").read_text())
    assert front["points"] and front["confirmation"]["complete"]
    doc = split_run.study.user_attrs[CONFIRMATION_ATTR]
    for p in front["points"]:
        test = p["metrics"]["test_accuracy"]
        assert _is_test_metric(test) and 0 <= test["value"] <= 1
        assert test == doc["trials"][str(p["number"])]["metrics"]["test_accuracy"]
        assert "test_accuracy" not in p["values"] and "test_accuracy" not in p["constraints"]
        assert "test_accuracy" not in p["search_metrics"]
    dense = front["dense"]["test_accuracy"]
    assert _is_test_metric(dense) and f"{len(SplitDigits()._halves()[1][1])}-sample" in dense["how"]


def test_trials_csv_fills_test_accuracy_for_confirmed_trials_only(split_run):
    rows = list(csv.DictReader((split_run.out_dir / "trials.csv").open()))
    assert "test_accuracy" in rows[0] and "test_accuracy_source" in rows[0]
    by_number = {r.number: r for r in records(split_run.study)}
    for row in rows:
        rec = by_number[int(row["number"])]
        if rec.confirmed:
            assert float(row["test_accuracy"]) == pytest.approx(rec.value("test_accuracy")) and row["test_accuracy_source"] == "measured"
        else:
            assert row["test_accuracy"] == "" and row["test_accuracy_source"] == ""
    assert any(r.confirmed for r in by_number.values())


def test_pick_selects_on_accuracy_not_test_accuracy(split_run):
    chosen = select_trial(split_run.study, pick="max accuracy")
    feasible = [r for r in records(split_run.study) if r.feasible]
    assert chosen.value("accuracy") == max(r.value("accuracy") for r in feasible)


def test_export_carries_test_accuracy_measured_on_the_exported_bytes(split_run, tmp_path):
    point = json.loads((split_run.out_dir / "front.json").read_text())["points"][0]
    r = export_trial(split_run.out_dir, tmp_path / "confirmed", trial=point["number"])
    written = json.loads((r.out_dir / "metrics.json").read_text())["metrics"]["test_accuracy"]
    assert written == point["metrics"]["test_accuracy"]  # the pass measured these very bytes (sha256 checked twice)

    # a run without a confirmation pass: export measures it itself, on the bytes it writes
    copy = tmp_path / "unconfirmed"
    copy.mkdir()
    shutil.copy(split_run.out_dir / "study.db", copy / "study.db")
    run = json.loads((split_run.out_dir / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run, "storage": f"sqlite:///{(copy / 'study.db').resolve()}"}))
    optuna.load_study(study_name="split", storage=f"sqlite:///{(copy / 'study.db').resolve()}").set_user_attr(CONFIRMATION_ATTR, {})
    r = export_trial(copy, tmp_path / "exported", trial=point["number"])
    measured = json.loads((r.out_dir / "metrics.json").read_text())["metrics"]["test_accuracy"]
    assert not r.confirmed and _is_test_metric(measured) and measured["value"] == pytest.approx(written["value"])


def test_the_report_and_the_cli_label_it(split_run):
    data = build_report_data(open_run(split_run.out_dir))
    front = [t for t in data.trials if t.on_front]
    assert front and all("test_accuracy" in t.metrics for t in front)
    assert all("test_accuracy" not in t.metrics for t in data.trials if not t.confirmed)
    label = metric_label("test_accuracy")
    assert "not used to select" in label and "measured on the artifact" in label
    assert f"{label}: " in hover_text(front[0])
    dense = {r["label"]: r for r in data.facts["Dense model"]}
    assert dense[label]["source"] == "measured" and TEST_SPLIT in dense[label]["how"]

    out = io.StringIO()
    print_front(json.loads((split_run.out_dir / "front.json").read_text())["points"], ["accuracy", "latency_ms"], file=out)
    head, *rest = out.getvalue().splitlines()
    assert head.split()[-1] == "test_accuracy" and rest[-1] == f"test_accuracy: {label}"
