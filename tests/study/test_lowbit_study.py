"""Sub-8-bit layers in a real study: int8 stand-in artifacts, simulated accuracy, labelled numbers."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import onnx
import optuna
import pytest

from autoprune.costmodel.planned import read_planned_bits
from autoprune.device import load_device_profile
from autoprune.exceptions import ConfigError
from autoprune.export import export_trial
from autoprune.plan import LayerPlan, Plan
from autoprune.profile import LocalProfiler
from autoprune.study import StudyContext, build, run_study
from autoprune.study.candidate import simulated_accuracy


def fast_profiler(name: str) -> LocalProfiler:
    """The device's real local profiler with fewer repetitions, for speed."""
    device = load_device_profile(name)
    return LocalProfiler(dataclasses.replace(device, profiler=dataclasses.replace(device.profiler, warmup=2, repetitions=20, min_duration_s=0.0)))


@pytest.fixture(scope="module")
def lowbit(tiny_config, tmp_path_factory):
    cfg = dataclasses.replace(
        tiny_config, name="lowbit", device="bitserial-sim",
        search=dataclasses.replace(tiny_config.search, n_trials=5, baselines=("dense-fp32", "dense-int8")),
        build=dataclasses.replace(tiny_config.build, qat_steps=3),
    )
    result = run_study(cfg, tmp_path_factory.mktemp("runs") / "lowbit", profiler=fast_profiler("bitserial-sim"), progress=False, log=lambda m: None)
    complete = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    low = [t for t in complete if any(v.get("bits", 32) < 8 for v in t.user_attrs["plan"].values())]
    native = [t for t in complete if all(v.get("bits", 32) in (8, 32) for v in t.user_attrs["plan"].values())]
    assert low and native, "the seeded study should sample both kinds of plan"
    return cfg, result, low, native


def test_low_bit_trials_are_simulated_stand_in_measured_and_estimated(lowbit):
    cfg, result, low, native = lowbit
    for t in low:
        m = t.user_attrs["metrics"]
        assert m["accuracy"]["source"] == "simulated" and "fake quantization" in m["accuracy"]["how"]
        assert "3 QAT steps" in m["accuracy"]["how"]
        assert m["latency_ms"]["source"] == "measured"
        assert "measured on the int8 stand-in of " in m["latency_ms"]["how"]
        for b in {v["bits"] for v in t.user_attrs["plan"].values() if v.get("bits", 32) < 8}:
            assert f"{b}-bit layers (" in m["latency_ms"]["how"] and f"{b}-bit layers (" in m["accuracy"]["how"]
        assert "stand-in" in m["latency_p90_ms"]["how"]
        assert m["size_kb"]["source"] == "estimated" and m["onnx_size_kb"]["source"] == "measured"
        assert m["size_kb"]["value"] < m["onnx_size_kb"]["value"] == t.user_attrs["size_bytes"] / 1024  # packed < int8
        assert "simulate" in t.user_attrs["stage_seconds"]
    # the front reads the labels from the metrics, so it shows `simulated` where it applies
    front = json.loads((result.out_dir / "front.json").read_text())
    sources = {p["number"]: p["metrics"]["accuracy"]["source"] for p in front["points"]}
    assert all(sources[t.number] == "simulated" for t in low if t.number in sources)


def test_the_artifact_is_the_int8_stand_in_and_the_simulation_is_reproducible(lowbit):
    cfg, result, low, native = lowbit
    ctx = StudyContext.prepare(cfg)
    t = low[0]
    plan = Plan.from_dict({"layers": t.user_attrs["plan"]})
    artifact = build(ctx, plan)
    assert artifact.sha256 == t.user_attrs["sha256"]
    assert artifact.standin_bits == {k: v["bits"] for k, v in t.user_attrs["plan"].items() if v.get("bits", 32) < 8}
    as_int8 = Plan({k: LayerPlan(ratio=v.get("ratio"), bits=8 if v.get("bits", 32) < 8 else v.get("bits")) for k, v in t.user_attrs["plan"].items()})
    # the closest runnable artifact, graph for graph; only its metadata adds the planned bits (for modelled targets)
    stand_in, runnable = onnx.load_from_string(artifact.onnx_bytes), onnx.load_from_string(build(ctx, as_int8).onnx_bytes)
    assert stand_in.graph.SerializeToString() == runnable.graph.SerializeToString()
    assert read_planned_bits(stand_in) and not read_planned_bits(runnable)
    accuracy, _ = simulated_accuracy(ctx, plan, artifact)
    assert accuracy.to_dict() == t.user_attrs["metrics"]["accuracy"]


def test_plans_with_only_runnable_bits_are_measured_as_before(lowbit):
    cfg, result, low, native = lowbit
    for t in native:
        m = t.user_attrs["metrics"]
        assert m["accuracy"]["source"] == "measured" and "onnxruntime" in m["accuracy"]["how"]
        assert "stand-in" not in m["latency_ms"]["how"]
        assert m["size_kb"] == {"value": t.user_attrs["size_bytes"] / 1024, "unit": "kB", "source": "measured", "how": "bytes of the ONNX artifact / 1024"}
        assert "onnx_size_kb" not in m and "simulate" not in t.user_attrs["stage_seconds"]


def test_export_of_a_low_bit_trial_keeps_the_labels(lowbit, tmp_path):
    cfg, result, low, native = lowbit
    r = export_trial(result.out_dir, tmp_path / "e", trial=low[0].number)
    metrics = json.loads((r.out_dir / "metrics.json").read_text())
    assert hashlib.sha256((r.out_dir / "model.onnx").read_bytes()).hexdigest() == metrics["model"]["sha256"] == low[0].user_attrs["sha256"]
    assert metrics["metrics"]["accuracy"]["source"] == "simulated"
    assert metrics["metrics"]["size_kb"]["source"] == "estimated"
    assert "int8 stand-in" in metrics["metrics"]["latency_ms"]["how"]


def test_low_bits_the_device_does_not_run_are_refused(tiny_config):
    cfg = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search, bits=(4, 32)))
    with pytest.raises(ConfigError, match=r"search.bits \[4\] are not run by device local-cpu"):
        StudyContext.prepare(cfg)
