"""Low-bit study options: build.activation_bits / calibration in the artifact and the simulation, sub-8-bit baselines."""

from __future__ import annotations

import dataclasses

import onnx
import optuna
import pytest

from autoprune import discover, zoo
from autoprune.baselines import baseline_bits, baseline_params
from autoprune.costmodel.planned import read_planned_bits
from autoprune.device import load_device_profile
from autoprune.exceptions import ConfigError
from autoprune.plan import LayerPlan, Plan
from autoprune.profile import LocalProfiler
from autoprune.study import StudyContext, build, run_study
from autoprune.study.candidate import simulated_accuracy


def fast_profiler(name: str) -> LocalProfiler:
    """The device's real local profiler with fewer repetitions, for speed."""
    device = load_device_profile(name)
    return LocalProfiler(dataclasses.replace(device, profiler=dataclasses.replace(device.profiler, warmup=2, repetitions=20, min_duration_s=0.0)))


@pytest.mark.parametrize(
    "label, ratio, bits",
    [("dense-fp32", 0.0, 32), ("dense-int8", 0.0, 8), ("dense-int4", 0.0, 4), ("uniform-0.5", 0.5, 8),
     ("uniform-0.25-fp32", 0.25, 32), ("uniform-0.25-int2", 0.25, 2), ("uniform-.5-int7", 0.5, 7)],
)
def test_baseline_labels_give_uniform_plans(label, ratio, bits):
    model, x = zoo.build("cnn"), zoo.example_input("cnn")
    space = discover(model, x, max_ratio=0.75, bits=(2, 4, 7, 8, 32))
    params = baseline_params(space, label)
    assert baseline_bits(label) == bits
    assert {v for k, v in params.items() if k.startswith("bits:")} == {bits}
    assert {v for k, v in params.items() if k.startswith("ratio:")} == {ratio}


def test_a_baseline_below_8_bits_the_space_cannot_take_is_refused_by_name():
    model, x = zoo.build("cnn"), zoo.example_input("cnn")
    space = discover(model, x, bits=(4, 8, 32))
    with pytest.raises(ConfigError, match=r"search.baselines: 'uniform-0.5-int2' needs 2-bit layers, which this study's bit-widths do not include \(they are \[4, 8, 32\]\)"):
        baseline_params(space, "uniform-0.5-int2")


@pytest.fixture(scope="module")
def lowbit(tiny_config, tmp_path_factory):
    cfg = dataclasses.replace(
        tiny_config, name="lowbit-options", device="bitserial-sim",
        search=dataclasses.replace(tiny_config.search, n_trials=2, baselines=("dense-int4", "uniform-0.5-int2")),
        build=dataclasses.replace(tiny_config.build, activation_bits=4, calibration="percentile", calibration_percentile=99.9),
    )
    result = run_study(cfg, tmp_path_factory.mktemp("runs") / "lowbit", profiler=fast_profiler("bitserial-sim"), progress=False, log=lambda m: None)
    return cfg, result


def test_sub_8_bit_baselines_run_as_labelled_and_say_how_they_were_simulated(lowbit):
    cfg, result = lowbit
    trials = {t.user_attrs.get("baseline"): t for t in result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert {"dense-int4", "uniform-0.5-int2"} <= trials.keys()
    for label, bits in (("dense-int4", 4), ("uniform-0.5-int2", 2)):
        t = trials[label]
        planned = {v["bits"] for v in t.user_attrs["plan"].values() if "bits" in v}
        assert planned == {bits}
        m = t.user_attrs["metrics"]
        assert m["accuracy"]["source"] == "simulated"
        # every searched layer is below 8 bits, so every activation is 4-bit (no 8-bit layers to mention)
        assert "4-bit activations with percentile ranges (99.9 % of values kept) from 256 training inputs" in m["accuracy"]["how"]
        assert "int8 stand-in" in m["latency_ms"]["how"] and m["size_kb"]["source"] == "estimated"
    assert any(v.get("ratio") for v in trials["uniform-0.5-int2"].user_attrs["plan"].values())


def test_activation_bits_change_the_simulated_accuracy_and_its_how_but_not_the_artifact(lowbit):
    cfg, result = lowbit
    ctx = StudyContext.prepare(cfg)
    plan = Plan({"re:conv.*": LayerPlan(bits=4), "fc": LayerPlan(bits=8)})
    artifact = build(ctx, plan)
    seen = {}
    for a in (None, 8, 2):
        c = dataclasses.replace(ctx, config=dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, activation_bits=a)))
        # the simulation's setting: the int8 stand-in's graph is the same; its metadata records the
        # activation bits the target runs the 4-bit layers at (a modelled target costs them so)
        built = onnx.load_from_string(build(c, plan).onnx_bytes)
        assert built.graph.SerializeToString() == onnx.load_from_string(artifact.onnx_bytes).graph.SerializeToString()
        assert {bits for _, bits in read_planned_bits(built).values()} == {32 if a is None else a}
        seen[a] = simulated_accuracy(c, plan, artifact)[0]
    assert "float activations into the layers below 8 bits, 8-bit into the 8-bit layers with percentile ranges" in seen[None].how
    assert "8-bit activations with percentile ranges (99.9 % of values kept) from 256 training inputs" in seen[8].how
    assert "2-bit activations into the layers below 8 bits, 8-bit into the 8-bit layers with percentile" in seen[2].how
    # 2-bit activations cost accuracy; how much depends on the trained tiny model (0.98 -> 0.91 and
    # 0.958 -> 0.947 on two trainings of it), so only the direction is asserted
    assert seen[2].value < seen[None].value
    assert simulated_accuracy(ctx, plan, artifact)[0].value == simulated_accuracy(ctx, plan, artifact)[0].value


def test_calibration_is_part_of_the_deterministic_build(lowbit):
    cfg, result = lowbit
    ctx = StudyContext.prepare(cfg)
    plan = Plan({"re:.*": LayerPlan(ratio=0.25, bits=8)})
    digest = {}
    for method, p in (("minmax", 99.99), ("percentile", 99.9), ("percentile", 99.0)):
        c = dataclasses.replace(ctx, config=dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, calibration=method, calibration_percentile=p)))
        digest[method, p] = build(c, plan).sha256
        assert build(c, plan).sha256 == digest[method, p]  # same settings, same bytes (export relies on it)
    assert len(set(digest.values())) == 3
