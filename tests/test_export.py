"""Export and apply: the exported model is the measured artifact, byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnxruntime as ort
import optuna
import pytest
import yaml

from autoprune import tasks
from autoprune.exceptions import ConfigError, ExportError, PlanError
from autoprune.export import apply_plan, export_trial
from autoprune.study.records import records


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return {p["number"]: export_trial(tiny_run.out_dir, out / f"t{p['number']}", trial=p["number"]) for p in tiny_run.front["points"]}


def test_every_front_trial_exports_with_its_exact_accuracy(tiny_run, exported):
    X, y = tasks.get("digits", width=0.25, epochs=4).eval_data()
    for number, r in exported.items():
        files = sorted(p.name for p in r.out_dir.iterdir())
        assert files == ["metrics.json", "model.onnx", "plan.yaml"]
        onnx_bytes = (r.out_dir / "model.onnx").read_bytes()
        metrics = json.loads((r.out_dir / "metrics.json").read_text())
        assert hashlib.sha256(onnx_bytes).hexdigest() == metrics["model"]["sha256"] == r.sha256
        # an independent onnxruntime session with default options, whole split at once
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        acc = float((session.run(None, {session.get_inputs()[0].name: X})[0].argmax(1) == y).mean())
        assert acc == metrics["metrics"]["accuracy"]["value"]
        assert metrics["metrics"]["latency_ms"]["source"] == "measured"
        assert metrics["measurement"]["settings"]["threads"] == 1


def test_plan_yaml_records_what_rebuilds_it(exported):
    r = next(iter(exported.values()))
    plan = yaml.safe_load((r.out_dir / "plan.yaml").read_text())
    assert plan["version"] == 1 and plan["layers"]
    meta = plan["meta"]
    assert meta["task"]["name"] == "digits" and meta["device"]["name"] == "local-cpu"
    assert meta["artifact_sha256"] == r.sha256 and meta["versions"]["onnxruntime"] == ort.__version__


def test_apply_rebuilds_the_same_bytes(exported, tmp_path):
    r = next(iter(exported.values()))
    facts = apply_plan(r.out_dir / "plan.yaml", tmp_path / "again.onnx")
    assert facts["matches_plan"] is True
    assert (tmp_path / "again.onnx").read_bytes() == (r.out_dir / "model.onnx").read_bytes()


def test_pick_chooses_the_best_under_the_constraint(tiny_run, tmp_path):
    complete = records(tiny_run.study)  # the numbers the run stands by: confirmed where re-measured
    budget = float(np.median([r.value("latency_ms") for r in complete]))
    r = export_trial(tiny_run.out_dir, tmp_path / "p", pick=f"max accuracy where latency_ms <= {budget}")
    ok = [c for c in complete if c.value("latency_ms") <= budget and c.feasible]
    best = max(c.value("accuracy") for c in ok)
    assert r.metrics["accuracy"]["value"] == best
    assert r.metrics["latency_ms"]["value"] <= budget


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"trial": 999}, "--trial 999: no complete trial"),
        ({"pick": "max accuracy where latency_ms <= 0"}, "no complete feasible trial satisfies it"),
        ({"pick": "best accuracy"}, "must start with 'max METRIC'"),
        ({"pick": "max accuracy where latency <= 1"}, "unknown metric 'latency'"),
        ({"pick": "max accuracy where latency_ms about 1"}, "cannot read condition"),
    ],
)
def test_bad_selection_writes_nothing(tiny_run, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        export_trial(tiny_run.out_dir, tmp_path / "none", **kwargs)
    assert not (tmp_path / "none").exists()


def test_not_a_run_dir(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        export_trial(tmp_path, trial=0)


def test_apply_rejects_unknown_layer(exported, tmp_path):
    r = next(iter(exported.values()))
    plan = yaml.safe_load((r.out_dir / "plan.yaml").read_text())
    plan["layers"]["conv9"] = {"ratio": 0.5}
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanError, match="layers.conv9 names no layer"):
        apply_plan(p, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_different_base_model_is_named_before_anything_is_rebuilt(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.out_dir, run)
    run_doc = json.loads((run / "run.json").read_text())
    run_doc["storage"] = run_doc["storage"].replace(str(tiny_run.out_dir), str(run))  # the copy's own database
    assert str(run) in run_doc["storage"]
    (run / "run.json").write_text(json.dumps(run_doc))
    study = optuna.load_study(study_name=run_doc["study_name"], storage=run_doc["storage"])
    study.set_user_attr("base_model_fingerprint", "0" * 64)  # as if the study had compressed another model
    number = tiny_run.front["points"][0]["number"]
    with pytest.raises(ExportError, match="base model .* is not the one the study compressed \\(000000000000\\).*AUTOPRUNE_CACHE"):
        export_trial(run, tmp_path / "e", trial=number)
    assert not (tmp_path / "e").exists()
