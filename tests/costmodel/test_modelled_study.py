"""A tiny real study on modelled targets: latencies say `modelled`, bits reach the model, limits refuse."""

from __future__ import annotations

import dataclasses

import onnx
import optuna
import pytest

from autoprune.costmodel.graph import analyze
from autoprune.device import load_device_profile
from autoprune.plan import LayerPlan, Plan
from autoprune.study import StudyContext, build, run_study

COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def _by_baseline(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["baseline"]: t for t in study.get_trials(states=COMPLETE) if t.user_attrs.get("baseline")}


@pytest.fixture(scope="module")
def bitserial_run(tiny_config, tmp_path_factory):
    cfg = dataclasses.replace(
        tiny_config, name="modelled", device="bitserial-sim",
        search=dataclasses.replace(tiny_config.search, n_trials=4, baselines=("dense-fp32", "dense-int8", "dense-int4")),
    )
    return run_study(cfg, tmp_path_factory.mktemp("runs") / "modelled", progress=False, log=lambda m: None)


def test_every_latency_and_energy_of_a_modelled_study_says_modelled(bitserial_run):
    trials = bitserial_run.study.get_trials(states=COMPLETE)
    assert len(trials) == 4
    for t in trials:
        m = t.user_attrs["metrics"]
        for name in ("latency_ms", "latency_p90_ms", "energy_mj"):
            assert m[name]["source"] == "modelled", (name, m[name])
            assert "bit-serial model" in m[name]["how"] and "stand-in" not in m[name]["how"]
        assert "Horowitz" in m["energy_mj"]["how"]
        assert t.user_attrs["measurement"]["settings"]["profiler"] == "bitserial"


def test_planned_bits_reach_the_model(bitserial_run):
    base = _by_baseline(bitserial_run.study)
    bit_ops = {k: t.user_attrs["measurement"]["device"]["model"]["bit_ops"] for k, t in base.items()}
    # 4-bit weights with 8-bit activations (build.activation_bits 8): half the one-bit steps of int8, every layer
    assert bit_ops["dense-int4"] * 2 == bit_ops["dense-int8"]
    assert bit_ops["dense-int8"] * 16 == bit_ops["dense-fp32"]  # 8 x 8 against 32 x 32
    latency = {k: t.user_attrs["metrics"]["latency_ms"]["value"] for k, t in base.items()}
    assert latency["dense-int4"] < latency["dense-int8"] < latency["dense-fp32"]


def test_the_artifact_carries_its_planned_bits(tiny_config):
    """The int4 stand-in runs as int8 but reads as 4-bit: the graph is the int8 one, the metadata differs."""
    cfg = dataclasses.replace(tiny_config, device="bitserial-sim")
    ctx = StudyContext.prepare(cfg)
    names = [q.name for q in ctx.space.layers]
    int4 = build(ctx, Plan({n: LayerPlan(bits=4) for n in names}))
    int8 = build(ctx, Plan({n: LayerPlan(bits=8) for n in names}))
    p4, p8 = onnx.load_from_string(int4.onnx_bytes), onnx.load_from_string(int8.onnx_bytes)
    assert p4.graph.SerializeToString() == p8.graph.SerializeToString()
    g4, g8 = analyze(p4), analyze(p8)
    weighted = [n for n in g4.nodes if n.weight_bits]
    assert len(weighted) == len(names) and all((n.weight_bits, n.act_bits) == (4, 8) for n in weighted)
    assert all(n.weight_bits == 8 for n in g8.nodes if n.weight_bits)
    assert sum(g4.weight_bytes_by_bits.values()) * 2 == pytest.approx(sum(g8.weight_bytes_by_bits.values()), abs=len(names))


def test_a_microcontroller_study_refuses_plans_that_break_flash(tiny_config, tmp_path):
    ctx = StudyContext.prepare(dataclasses.replace(tiny_config, device="cortex-m7"))
    names = [q.name for q in ctx.space.layers]
    need = {bits: analyze(onnx.load_from_string(build(ctx, Plan({n: LayerPlan(bits=bits) for n in names})).onnx_bytes)).constant_bytes / 1024
            for bits in (8, 32)}
    device = load_device_profile("cortex-m7")
    flash = (need[8] + need[32]) / 2  # int8 fits, fp32 does not
    device = dataclasses.replace(device, target=dataclasses.replace(device.target, flash_kb=flash))
    device.save(tmp_path / "small-mcu.yaml")
    cfg = dataclasses.replace(
        tiny_config, name="mcu", device=str(tmp_path / "small-mcu.yaml"),
        search=dataclasses.replace(tiny_config.search, n_trials=2, baselines=("dense-fp32", "dense-int8")),
    )
    result = run_study(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    base = _by_baseline(result.study)
    fp32, int8 = base["dense-fp32"], base["dense-int8"]
    assert fp32.constraints["device_flash_kb"] == pytest.approx(need[32] - flash, rel=1e-3) and fp32.constraints["device_flash_kb"] > 0
    assert int8.constraints["device_flash_kb"] < 0 and int8.constraints["device_sram_kb"] < 0
    reason = fp32.user_attrs["infeasible_reason"]
    assert reason.startswith(f"refused by device {device.name}: flash_kb: weights and constants in flash {need[32]:.1f} kB")
    assert reason.endswith(f"exceeds the device's {flash:g} kB")
    assert "infeasible_reason" not in int8.user_attrs
    on_front = {p["number"] for p in result.front["points"]}
    assert fp32.number not in on_front and int8.number in on_front  # refused, never a silent pass
    assert int8.user_attrs["metrics"]["latency_ms"]["source"] == "modelled"
