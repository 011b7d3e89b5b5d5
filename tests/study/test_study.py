"""The study end to end on a tiny real study: baselines, outputs, storage, resume, failures."""

from __future__ import annotations

import csv
import dataclasses
import json

import optuna
import pytest

from autoprune.exceptions import ConfigError, ProfilerError
from autoprune.meters import detect_meter
from autoprune.profile import LocalProfiler, Profiler
from autoprune.study import run_study
from autoprune.study.records import records


def test_baselines_are_labelled_and_complete(tiny_run):
    trials = tiny_run.study.get_trials()
    labels = {t.user_attrs.get("baseline"): t for t in trials if t.user_attrs.get("baseline")}
    assert set(labels) == {"dense-fp32", "dense-int8", "uniform-0.5"}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in labels.values())
    dense = labels["dense-fp32"]
    assert all(v.get("bits", 32) == 32 and v.get("ratio", 0) == 0 for v in dense.user_attrs["plan"].values())
    int8 = labels["dense-int8"]
    assert int8.user_attrs["size_bytes"] < 0.5 * dense.user_attrs["size_bytes"]  # weights really are int8
    half = labels["uniform-0.5"]
    assert half.user_attrs["metrics"]["macs"]["value"] < 0.4 * dense.user_attrs["metrics"]["macs"]["value"]


def test_every_metric_says_how_it_was_obtained(tiny_run):
    for t in tiny_run.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        m = t.user_attrs["metrics"]
        assert m["accuracy"]["source"] == "measured" and "onnxruntime" in m["accuracy"]["how"]
        assert m["latency_ms"]["source"] == "measured"
        assert m["energy_mj"]["source"] == ("measured" if detect_meter().meter is not None else "estimated")  # this host's meter, if any
        assert set(t.user_attrs["stage_seconds"]) >= {"prune", "bn_recalibration", "export", "quantize", "evaluate", "profile"}
        settings = t.user_attrs["measurement"]["settings"]
        assert settings["threads"] == 1 and settings["repetitions"] >= 1


def test_outputs_front_and_csv(tiny_run):
    out = tiny_run.out_dir
    front = json.loads((out / "front.json").read_text())
    assert front["points"], "front is empty"
    numbers = {p["number"] for p in front["points"]}
    complete = {r.number: r for r in records(tiny_run.study)}  # confirmed numbers where re-measured
    assert numbers <= set(complete)
    # non-dominated: no complete feasible trial is at least as good on both objectives and better on one
    for p in front["points"]:
        a, l = p["values"]["accuracy"], p["values"]["latency_ms"]
        assert (a, l) == complete[p["number"]].values(["accuracy", "latency_ms"])
        for r in complete.values():
            if r.feasible:
                ta, tl = r.values(["accuracy", "latency_ms"])
                assert not (ta >= a and tl <= l and (ta > a or tl < l)), (p["number"], r.number)
        assert p["plan"] and p["sha256"] and p["metrics"]["latency_ms"]["source"] == "measured"
        assert p["confirmed"], f"front point {p['number']} was not confirmed"
        assert {"median_ms", "p90_ms", "cv", "n"} <= set(p["search_latency_stats"])  # the search window's statistics
        assert len(p["confirmation"]["round_medians_ms"]) == 3 and p["confirmation"]["round_cv"] >= 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == len(tiny_run.study.trials)
    assert {"number", "state", "baseline", "accuracy", "accuracy_source", "latency_ms", "plan"} <= set(rows[0])


def test_optuna_load_study_sees_trials_and_user_attrs(tiny_run):
    run = json.loads((tiny_run.out_dir / "run.json").read_text())
    study = optuna.load_study(study_name=run["study_name"], storage=run["storage"])
    assert len(study.trials) == 8
    assert study.user_attrs["device"]["name"] == "local-cpu"
    assert study.user_attrs["space"]["groups"][0]["name"] == "conv1"
    assert all("metrics" in t.user_attrs for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_rerun_resumes_without_repeating_baselines(tmp_path, tiny_config):
    cfg = dataclasses.replace(tiny_config, name="resume", search=dataclasses.replace(tiny_config.search, n_trials=5))
    first = run_study(cfg, tmp_path / "r", progress=False, log=lambda m: None)
    assert len(first.study.trials) == 5
    numbers = [t.number for t in first.study.trials]
    cfg7 = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, n_trials=7))
    second = run_study(cfg7, tmp_path / "r", progress=False, log=lambda m: None)
    trials = second.study.get_trials()
    assert len(trials) == 7 and [t.number for t in trials[:5]] == numbers
    baselines = [t.user_attrs.get("baseline") for t in trials if t.user_attrs.get("baseline")]
    assert sorted(baselines) == sorted(set(baselines))  # each baseline ran once
    # the same command again has nothing left to do
    third = run_study(cfg7, tmp_path / "r", progress=False, log=lambda m: None)
    assert len(third.study.trials) == 7


def test_resume_with_a_different_space_is_refused(tmp_path, tiny_config):
    cfg = dataclasses.replace(tiny_config, name="frozen", search=dataclasses.replace(tiny_config.search, n_trials=1))
    run_study(cfg, tmp_path / "f", progress=False, log=lambda m: None)
    changed = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, max_ratio=0.5))
    with pytest.raises(ConfigError, match="search.max_ratio differs"):
        run_study(changed, tmp_path / "f", progress=False, log=lambda m: None)


class FlakyProfiler(Profiler):
    """A fake for the failure path: the real local profiler, except that call number ``fail_on`` raises."""

    def __init__(self, device, fail_on: int) -> None:
        super().__init__(device)
        self.inner, self.calls, self.fail_on = LocalProfiler(device), 0, fail_on

    def measure(self, model_path, inputs=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise ProfilerError("device went away (injected by FlakyProfiler)")
        return self.inner.measure(model_path, inputs)


def test_failing_candidate_becomes_failed_trial_and_study_goes_on(tmp_path, tiny_config):
    from autoprune.device import load_device_profile

    cfg = dataclasses.replace(tiny_config, name="flaky", search=dataclasses.replace(tiny_config.search, n_trials=5))
    result = run_study(cfg, tmp_path / "x", profiler=FlakyProfiler(load_device_profile("local-cpu"), fail_on=2), progress=False, log=lambda m: None)
    states = [t.state for t in result.study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 4
    failed = next(t for t in result.study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert "device went away" in failed.user_attrs["fail_reason"] and failed.user_attrs["plan"]
    rows = (tmp_path / "x" / "trials.csv").read_text()
    assert "device went away" in rows
    # resuming re-runs the baseline that failed
    assert failed.user_attrs.get("baseline") == "dense-int8"
    again = run_study(dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, n_trials=6)), tmp_path / "x", progress=False, log=lambda m: None)
    done = [t.user_attrs.get("baseline") for t in again.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert "dense-int8" in done


def test_bad_config_writes_nothing(tmp_path, tiny_config):
    bad = dataclasses.replace(tiny_config, device="no-such-board")
    with pytest.raises(ConfigError, match="unknown device profile"):
        run_study(bad, tmp_path / "nothing", progress=False)
    assert not (tmp_path / "nothing").exists()
