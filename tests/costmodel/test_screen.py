"""The screen: a plan's untrained twin priced by the cost model before the plan is trained.

Real parts throughout: a real (short) calibration of local-cpu, real builds, onnxruntime's
optimized graphs, a real study on SQLite.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import optuna
import pytest
import yaml

from autoprune.config import Constraints, StudyConfig
from autoprune.costmodel.calibrated import CalibratedProfiler
from autoprune.costmodel.profiler import ModelledProfiler
from autoprune.device import load_device_profile
from autoprune.profile import make_profiler
from autoprune.study import StudyContext, build, run_study
from autoprune.study.hybrid import HybridProfiler
from autoprune.study.screen import ScreenPolicy, screen, screens
from autoprune.study.workers import OVER_BUDGET

PRUNED = (optuna.trial.TrialState.PRUNED,)
COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def _config(tiny_config, device, latency_ms: float | None = None, **search) -> StudyConfig:
    """The tiny study on ``device``, fine-tuning a few steps (so the built weights are not the twin's)."""
    return dataclasses.replace(
        tiny_config, name="screen", device=str(device),
        constraints=dataclasses.replace(tiny_config.constraints, latency_ms=latency_ms),
        search=dataclasses.replace(tiny_config.search, mode="model", **search),
        build=dataclasses.replace(tiny_config.build, finetune_steps=3),
    )


def _plan(ctx, ratio: float, bits: int):
    return ctx.space.plan_from_params(ctx.space.params_for(ratio, bits))


@pytest.fixture(scope="module")
def ctx(tiny_config, calibrated_profile):
    return StudyContext.prepare(_config(tiny_config, calibrated_profile))


@pytest.fixture(scope="module")
def model(ctx):
    with CalibratedProfiler(ctx.device) as p:
        yield p


def _with_budget(ctx, latency_ms: float | None):
    return dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, constraints=Constraints(latency_ms=latency_ms)))


def test_the_twins_forecast_is_the_built_artifacts_prediction(ctx, model, tmp_path):
    """Same graph, other weights (fine-tuned, calibrated on 256 inputs, not 16): the same modelled latency."""
    for ratio, bits in ((0.0, 32), (0.5, 8), (0.75, 32)):
        plan = _plan(ctx, ratio, bits)
        s = screen(_with_budget(ctx, 1e-6), plan, model)
        artifact = build(ctx, plan)
        artifact.save(tmp_path / "built.onnx")
        assert s.forecast.slack == 0.0 and s.forecast.measurement.latency_ms.source == "modelled"
        assert s.forecast.measurement.latency_ms.value == pytest.approx(model.measure(tmp_path / "built.onnx").latency_ms.value, rel=1e-9)
        assert artifact.stage_seconds["finetune"] > 0  # the built one was trained; the twin never is


def test_a_plan_over_budget_is_turned_away_with_its_forecast_and_constraint(ctx, model):
    plan = _plan(ctx, 0.0, 32)
    predicted = screen(_with_budget(ctx, None), plan, model).forecast.measurement.latency_ms.value
    s = screen(_with_budget(ctx, predicted / 2), plan, model)
    assert s.reason.startswith("screened before training, on its untrained twin (the same graph): latency_ms ")
    assert s.reason.endswith(f"(modelled) exceeds constraints.latency_ms {predicted / 2:g} ms")
    assert s.constraints == {"latency_ms": pytest.approx(predicted / 2)}
    d = s.to_dict()
    assert d["passed"] is False and d["metrics"]["latency_ms"]["value"] == pytest.approx(predicted)
    assert "predicted by the per-kernel linear cost model" in d["metrics"]["latency_ms"]["how"]


def test_a_plan_that_passes_builds_the_same_bytes_from_the_screens_pruned_model(ctx, model):
    plan = _plan(ctx, 0.5, 8)
    s = screen(_with_budget(ctx, 1e6), plan, model)
    assert s.reason == "" and s.constraints["latency_ms"] < 0 and s.to_dict()["passed"] is True
    assert build(ctx, plan, pruned=s.pruned).sha256 == build(ctx, plan).sha256


def test_a_hybrid_screen_allows_the_margin(ctx, model):
    """hybrid may time the plan instead: screened only if the prediction, hybrid_margin lower, still breaks the budget."""
    plan = _plan(ctx, 0.0, 32)
    hybrid = HybridProfiler(make_profiler(ctx.device), model, ["accuracy", "latency_ms"], margin=0.2)
    p = screen(_with_budget(ctx, None), plan, hybrid).forecast
    assert p.slack == 0.2
    value = p.measurement.latency_ms.value
    assert screen(_with_budget(ctx, value * 0.9), plan, hybrid).reason == ""  # within the margin: built, maybe timed
    turned = screen(_with_budget(ctx, value * 0.7), plan, hybrid).reason
    assert f"; {value * 0.8:.4g} ms with hybrid_margin 20% off) exceeds constraints.latency_ms" in turned
    hybrid.measurer.close()  # the cost model is the module's


def test_only_a_study_with_something_to_forecast_and_a_budget_screens(ctx, model, tiny_config):
    assert screens(_with_budget(ctx, 1.0), model)
    assert not screens(_with_budget(ctx, None), model)  # nothing to hold the forecast to
    off = dataclasses.replace(ctx, config=dataclasses.replace(
        ctx.config, constraints=Constraints(latency_ms=1.0), search=dataclasses.replace(ctx.config.search, screen=False)))
    assert not screens(off, model)
    with make_profiler(ctx.device) as timer:  # a profiler that times cannot forecast
        assert not timer.forecasts and timer.forecast("unused.onnx") is None
        assert not screens(_with_budget(ctx, 1.0), timer)
    mcu = StudyContext.prepare(dataclasses.replace(tiny_config, device="cortex-m7"))
    assert screens(mcu, ModelledProfiler(mcu.device))  # flash and SRAM are limits with no budget set


def test_a_plan_that_breaks_a_microcontrollers_flash_is_screened(tiny_config, tmp_path):
    device = load_device_profile("cortex-m7")
    small = dataclasses.replace(device, target=dataclasses.replace(device.target, flash_kb=1.0))
    small.save(tmp_path / "tiny-flash.yaml")
    ctx = StudyContext.prepare(dataclasses.replace(tiny_config, device=str(tmp_path / "tiny-flash.yaml")))
    s = screen(ctx, _plan(ctx, 0.0, 8), ModelledProfiler(ctx.device))
    assert s.reason.startswith(f"screened before training, on its untrained twin (the same graph): refused by device {device.name}: "
                               "flash_kb: weights and constants in flash ")
    assert s.constraints["device_flash_kb"] > 0 and "device_sram_kb" in s.constraints


def test_a_model_study_with_a_latency_budget_screens_plans_and_keeps_its_baselines(tiny_config, calibrated_profile, ctx, model, tmp_path):
    """Budget: just above the most pruned int8 plan's forecast, so nearly every sampled plan breaks it."""
    budget = screen(_with_budget(ctx, None), _plan(ctx, 0.9, 8), model).forecast.measurement.latency_ms.value * 1.02
    cfg = _config(tiny_config, calibrated_profile, latency_ms=budget, n_trials=8)
    result = run_study(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    study = result.study
    screened = [t for t in study.get_trials(states=PRUNED) if not t.user_attrs.get(OVER_BUDGET)]
    assert screened, "no plan was screened: the budget should have turned most away"
    for t in screened:
        assert t.user_attrs["fail_reason"].startswith("screened before training")
        assert t.constraints["latency_ms"] > 0 and t.user_attrs["screen"]["passed"] is False
        assert set(t.user_attrs["stage_seconds"]) == {"prune", "screen"}  # nothing trained, built or evaluated
        assert t.user_attrs["plan"]
    baselines = {t.user_attrs["baseline"]: t for t in study.get_trials(states=COMPLETE) if "baseline" in t.user_attrs}
    assert set(baselines) == set(cfg.search.baselines)  # measured whatever they break
    assert baselines["dense-fp32"].constraints["latency_ms"] > 0 and "screen" not in baselines["dense-fp32"].user_attrs
    for t in study.get_trials(states=COMPLETE):
        if t.user_attrs.get("screen", {}).get("passed"):  # a sampled plan that passed: its modelled latency is its forecast
            assert t.user_attrs["screen"]["passed"] and t.user_attrs["metrics"]["latency_ms"]["value"] <= budget
            assert t.user_attrs["screen"]["metrics"]["latency_ms"]["value"] == pytest.approx(t.user_attrs["metrics"]["latency_ms"]["value"])
    rows = (tmp_path / "run" / "trials.csv").read_text()
    assert "screened before training" in rows


def test_the_screen_runs_while_it_pays():
    policy = ScreenPolicy(window=10, first=3)
    for _ in range(3):  # the first plans are always screened, whatever they show
        assert policy.wanted()
        policy.record(False, twin_s=0.2, build_s=2.0)
    assert not policy.wanted()  # none of the plans broke the budget: a twin costs 0.2 s and saves nothing
    assert policy.why_not() == ("not screened: 0 of the last 3 sampled plans broke the budget, and a twin takes 0.2 s "
                                "against 2 s a built trial (medians)")
    policy.record(True, twin_s=None, build_s=2.0)  # built unscreened, and it broke the budget: 1 in 4
    assert policy.wanted()  # 1/4 x (2.0 - 0.2) = 0.45 s saved a plan against 3/4 x 0.2 = 0.15 s spent
    for _ in range(10):
        policy.record(False, build_s=2.0)
    assert not policy.wanted()  # the window forgot it
    cheap = ScreenPolicy(window=10, first=1)
    cheap.record(True, twin_s=1.0)
    cheap.record(False, twin_s=1.0, build_s=1.2)
    assert not cheap.wanted()  # half the plans break, but a twin costs nearly a whole trial: 0.5 x 0.2 < 0.5 x 1.0


def test_the_run_command_says_how_many_plans_it_screened(tiny_config, tmp_path):
    doc = tiny_config.to_dict()
    doc.update(name="screen-cli", device="cortex-m7")
    doc["constraints"]["latency_ms"] = 1e-6  # nothing fits: every sampled plan is turned away
    doc["search"].update(n_trials=4, baselines=["dense-int8"])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    r = subprocess.run([sys.executable, "-m", "autoprune", "run", str(path), "--out", str(tmp_path / "run"), "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert ("3 plan(s) screened before training: their untrained twin's modelled costs broke a budget or a device limit "
            "(trials.csv, fail_reason)") in r.stdout
    assert "Pareto front of screen-cli: 0 point(s) of 1 complete trial(s)" in r.stdout  # the baseline, over budget
