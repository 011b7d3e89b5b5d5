"""Recovery of the model that ships: ``recover``, ``build_recovered``, ``export --finetune`` and ``apply`` of its plan."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autoprune.compress.build import build_artifact, build_recovered
from autoprune.compress.recover import RecoverySettings, recover
from autoprune.evaluate import evaluate_onnx
from autoprune.exceptions import ConfigError
from autoprune.export import apply_plan, export_trial
from autoprune.metrics import SOURCES
from autoprune.study.context import StudyContext
from autoprune.study.records import records
from autoprune.tasks.digits import DigitsTask
from autoprune.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ctx(tiny_config):
    return StudyContext.prepare(tiny_config)


@pytest.fixture(scope="module")
def heavy(ctx):
    """Uniform 0.75, int8, no fine-tuning in the build: the study's proxy leaves room to recover."""
    plan = ctx.space.plan_from_params(ctx.space.params_for(0.75, 8))
    with torch_threads(2):
        rb = build_recovered(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, ctx.config.build,
                             RecoverySettings(epochs=2, lr=3e-3))
    return plan, rb


def test_recovery_raises_the_accuracy_of_a_heavily_pruned_plan(ctx, heavy):
    plan, rb = heavy
    proxy = evaluate_onnx(rb.unrecovered.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value
    recovered = evaluate_onnx(rb.recovered.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value
    assert recovered > proxy + 0.05, (proxy, recovered)
    assert len(rb.losses) == 2 and rb.losses[1] < rb.losses[0]
    assert rb.recovered.channels == rb.unrecovered.channels and rb.recovered.macs == rb.unrecovered.macs


def test_the_unrecovered_artifact_is_the_studys_and_recovery_repeats_byte_for_byte(ctx, heavy):
    plan, rb = heavy
    with torch_threads(2):
        assert build_artifact(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, ctx.config.build).sha256 == rb.unrecovered.sha256
        again = build_recovered(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, ctx.config.build, RecoverySettings(epochs=2, lr=3e-3))
    assert again.recovered.onnx_bytes == rb.recovered.onnx_bytes
    assert again.losses == rb.losses


def test_recover_distills_and_leaves_the_process_as_it_found_it(ctx):
    student = copy.deepcopy(ctx.model)
    teacher_state = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    losses = recover(student, ctx.task, 1, 1e-3, teacher=ctx.model, batch_size=256)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    assert len(losses) == 1 and np.isfinite(losses[0])
    assert not student.training and not ctx.model.training
    assert all(torch.equal(v, ctx.model.state_dict()[k]) for k, v in teacher_state.items())  # the teacher is not trained


def test_recovery_settings_round_trip_and_name_bad_values():
    s = RecoverySettings(epochs=3, lr=1e-4, distill=True, seed=2)
    assert RecoverySettings.from_dict(s.to_dict()) == s
    assert s.to_dict()["schedule"].startswith("cosine")
    with pytest.raises(ConfigError, match="plan.yaml: meta.recovery.epochs must be an integer >= 1, got 0"):
        RecoverySettings.from_dict({**s.to_dict(), "epochs": 0}, "plan.yaml: meta.recovery")
    with pytest.raises(ConfigError, match="meta.recovery: unknown key momentum"):
        RecoverySettings.from_dict({**s.to_dict(), "momentum": 0.9}, "meta.recovery")
    with pytest.raises(ConfigError, match="meta.recovery.optimizer must be"):
        RecoverySettings.from_dict({**s.to_dict(), "optimizer": "SGD"}, "meta.recovery")
    with pytest.raises(ConfigError, match="recovery.alpha must be a number in \\[0, 1\\]"):
        RecoverySettings(epochs=1, lr=1e-3, alpha=1.5)


# -- export --finetune ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned_trial(tiny_run) -> int:
    return next(r.number for r in records(tiny_run.study) if r.baseline == "uniform-0.5")


@pytest.fixture(scope="module")
def recovered_exports(tiny_run, pruned_trial, tmp_path_factory):
    """The same recovered export twice, with a FAKE test split (digits has none: its eval split stands in)."""
    out = tmp_path_factory.mktemp("recovered")
    mp = pytest.MonkeyPatch()
    mp.setattr(DigitsTask, "test_data", lambda self: self.eval_data(), raising=True)
    try:
        return [export_trial(tiny_run.out_dir, out / f"e{i}", trial=pruned_trial, finetune=2, distill=True, lr=1e-3) for i in range(2)]
    finally:
        mp.undo()


def test_export_finetune_writes_recovered_and_proxy_numbers_with_their_sources(tiny_run, pruned_trial, recovered_exports):
    r = recovered_exports[0]
    doc = json.loads((r.out_dir / "metrics.json").read_text())
    onnx_bytes = (r.out_dir / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == doc["model"]["sha256"] == r.sha256
    record = next(x for x in records(tiny_run.study) if x.number == pruned_trial)
    assert doc["recovery"]["unrecovered_sha256"] == record.trial.user_attrs["sha256"] != r.sha256
    for name in ("accuracy", "test_accuracy", "latency_ms", "latency_p90_ms", "size_kb", "macs"):
        m = doc["metrics"][name]
        assert m["source"] in SOURCES and m["how"], name
    assert {k: v for k, v in doc["proxy_metrics"].items() if k != "test_accuracy"} == record.metrics  # the study's numbers
    assert doc["proxy_metrics"]["test_accuracy"]["how"].endswith("measured on the measured artifact at export")
    assert doc["metrics"]["test_accuracy"]["how"].endswith("measured on the recovered artifact at export")
    assert "after recovery: 2 epoch(s)" in doc["metrics"]["accuracy"]["how"] and "distilled from the dense model" in doc["metrics"]["accuracy"]["how"]
    assert "round-robin with the unrecovered artifact" in doc["metrics"]["latency_ms"]["how"]
    # the recovered accuracy is the exported file's, in a fresh onnxruntime session
    task = DigitsTask(width=0.25, epochs=4)
    assert evaluate_onnx(onnx_bytes, *task.eval_data(), task).value == doc["metrics"]["accuracy"]["value"]
    rec = doc["recovery"]
    assert (rec["epochs"], rec["distill"], rec["lr"], rec["seed"]) == (2, True, 1e-3, 0)
    assert len(rec["losses"]) == 2 and rec["seconds"] > 0 and rec["schedule"].startswith("cosine")
    assert rec["latency"]["rounds"] == 3 and set(rec["latency"]["round_medians_ms"]) == {"recovered", "unrecovered"}
    assert r.proxy_metrics == doc["proxy_metrics"] and r.recovery == rec


def test_export_finetune_is_deterministic_and_apply_rebuilds_the_recovered_bytes(recovered_exports, tmp_path):
    a, b = recovered_exports
    assert (a.out_dir / "model.onnx").read_bytes() == (b.out_dir / "model.onnx").read_bytes()
    plan = yaml.safe_load((a.out_dir / "plan.yaml").read_text())
    assert plan["meta"]["recovery"]["epochs"] == 2 and plan["meta"]["artifact_sha256"] == a.sha256
    facts = apply_plan(a.out_dir / "plan.yaml", tmp_path / "again.onnx")
    assert facts["matches_plan"] is True and facts["recovered"] is True and facts["sha256"] == a.sha256
    assert (tmp_path / "again.onnx").read_bytes() == (a.out_dir / "model.onnx").read_bytes()


def test_export_without_finetune_adds_test_accuracy_of_the_exported_bytes(tiny_run, pruned_trial, tmp_path, monkeypatch):
    monkeypatch.setattr(DigitsTask, "test_data", lambda self: self.eval_data())  # FAKE test split
    r = export_trial(tiny_run.out_dir, tmp_path / "plain", trial=pruned_trial)
    doc = json.loads((r.out_dir / "metrics.json").read_text())
    assert doc["model"]["sha256"] == r.sha256 and "recovery" not in doc and "proxy_metrics" not in doc
    m = doc["metrics"]["test_accuracy"]
    assert m["source"] == "measured" and "never used to select" in m["how"] and m["how"].endswith("measured on the measured artifact at export")
    assert m["value"] == doc["metrics"]["accuracy"]["value"]  # the FAKE test split is the eval split


def test_export_without_a_test_split_adds_nothing(tiny_run, pruned_trial, tmp_path):
    r = export_trial(tiny_run.out_dir, tmp_path / "plain", trial=pruned_trial)
    assert "test_accuracy" not in r.metrics


@pytest.mark.parametrize("kwargs, message", [
    ({"distill": True}, "--distill needs --finetune EPOCHS"),
    ({"lr": 1e-3}, "--lr needs --finetune EPOCHS"),
    ({"finetune": 0}, "--finetune must be an integer >= 1, got 0"),
])
def test_bad_recovery_options_write_nothing(tiny_run, pruned_trial, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        export_trial(tiny_run.out_dir, tmp_path / "none", trial=pruned_trial, **kwargs)
    assert not (tmp_path / "none").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "autoprune", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=os.environ.copy(), timeout=600)


def test_cli_distill_without_finetune_is_one_line_exit_2(tiny_run, tmp_path):
    r = _cli("export", tiny_run.out_dir, "--trial", 0, "--distill", "--out", tmp_path / "x")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["autoprune export: error: --distill needs --finetune EPOCHS"]
    assert not (tmp_path / "x").exists()
    r = _cli("export", tiny_run.out_dir, "--trial", 0, "--finetune", "0")
    assert r.returncode == 2 and "--finetune: must be a whole number of epochs >= 1, got '0'" in r.stderr


def test_cli_finetune_prints_proxy_and_recovered_accuracy_with_how(tiny_run, pruned_trial, tmp_path):
    r = _cli("export", tiny_run.out_dir, "--trial", pruned_trial, "--finetune", 1, "--out", tmp_path / "t")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.strip().startswith("accuracy:"))
    assert "proxy (onnxruntime on the" in line and "recovered (onnxruntime on the" in line and "after recovery: 1 epoch(s)" in line
    r = _cli("export", tiny_run.out_dir, "--trial", pruned_trial, "--finetune", 1, "--out", tmp_path / "j", "--json")
    doc = json.loads(r.stdout)
    assert doc["recovery"]["epochs"] == 1 and doc["metrics"]["accuracy"]["source"] == "measured" and "accuracy" in doc["proxy_metrics"]
    assert (tmp_path / "t" / "model.onnx").read_bytes() == (tmp_path / "j" / "model.onnx").read_bytes()


# -- the proxy benchmark, on a tiny configuration ------------------------------------------------------


def test_proxy_spearman_benchmark_runs_on_a_tiny_configuration(tmp_path, model_cache):
    spec = importlib.util.spec_from_file_location("proxy_spearman", ROOT / "benchmarks" / "proxy_spearman.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "proxy.txt"
    rc = bench.main(["--task", "digits", "--task-options", '{"width": 0.25, "epochs": 4}', "--plans", "4", "--uniform", "0.5",
                     "--epochs", "1", "--lr", "3e-3", "--build-options", '{"bn_batches": 2}', "--round-to", "4", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "spearman" in text.lower() and "machine:" in text and "wall time" in text
    assert ("goal >= 0.8: met" in text) or ("goal >= 0.8: not met" in text)
    rows = [l for l in text.splitlines() if l.startswith("plan ")]
    assert len(rows) == 4
