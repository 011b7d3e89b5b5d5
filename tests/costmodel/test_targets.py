"""The modelled targets: bit-serial scaling with bits, microcontroller limits, profiles that load and save."""

from __future__ import annotations

import dataclasses

import onnx
import pytest

from autoprune.costmodel.graph import analyze
from autoprune.costmodel.profiler import ModelledProfiler
from autoprune.device import DeviceProfile, load_device_profile
from autoprune.exceptions import ConfigError

from costmodel_graphs import conv_net, qdq_dense


@pytest.fixture(scope="module")
def bitserial():
    return load_device_profile("bitserial-sim")


@pytest.fixture(scope="module")
def mcu():
    return load_device_profile("cortex-m7")


def _estimate(device, m):
    return device.target.estimate(analyze(m))


def test_bit_serial_latency_and_mac_energy_scale_with_weight_bits_times_activation_bits(bitserial):
    t = bitserial.target
    e8, e4, e48, e2 = (_estimate(bitserial, qdq_dense(p)) for p in ((8, 8), (4, 4), (4, 8), (2, 2)))
    assert _estimate(bitserial, qdq_dense()).latency_ms == e8.latency_ms  # the int8 graph is an 8 x 8 plan
    macs = 64 * 32
    assert e8.latency_ms == pytest.approx(macs * 64 / t.bit_lanes / (t.clock_mhz * 1e3))
    assert e4.latency_ms == pytest.approx(e8.latency_ms * 16 / 64)  # the model's ratio: (4 x 4) / (8 x 8)
    assert e48.latency_ms == pytest.approx(e8.latency_ms * 32 / 64)
    assert e2.latency_ms == pytest.approx(e8.latency_ms * 4 / 64)
    assert e4.detail["energy_pj"]["mac"] == pytest.approx(e8.detail["energy_pj"]["mac"] / 4)
    assert e4.detail["energy_pj"]["mac"] == pytest.approx(macs * 16 * (t.mult8_pj + t.add8_pj) / 64)
    assert e4.detail["energy_pj"]["dram"] == pytest.approx(e8.detail["energy_pj"]["dram"] / 2)  # weights packed at 4 bits
    assert e2.energy_mj < e4.energy_mj < e8.energy_mj
    assert "Horowitz" in e8.energy_how and "weight bits x activation bits" in e8.latency_how
    assert "sources: Horowitz" in e8.latency_how  # every number names the model and its published sources


def test_bit_serial_float_layers_cost_32_by_32(bitserial):
    g = analyze(conv_net())
    assert bitserial.target.bit_ops(g) == g.macs * 32 * 32


def _tight(mcu: DeviceProfile, flash_kb: float, sram_kb: float) -> DeviceProfile:
    return dataclasses.replace(mcu, target=dataclasses.replace(mcu.target, flash_kb=flash_kb, sram_kb=sram_kb))


def test_microcontroller_refuses_what_breaks_flash_or_sram_and_accepts_what_fits(mcu):
    g = analyze(conv_net())  # 488 B of constants, 2048 B peak activations
    fits = _tight(mcu, flash_kb=1.0, sram_kb=2.0).target.estimate(g)
    assert [(lim.name, lim.excess <= 0) for lim in fits.limits] == [("flash_kb", True), ("sram_kb", True)]

    flash, sram = _tight(mcu, flash_kb=0.25, sram_kb=1.0).target.estimate(g).limits
    assert flash.needed == pytest.approx(488 / 1024) and flash.excess == pytest.approx(488 / 1024 - 0.25)
    assert flash.reason() == "flash_kb: weights and constants in flash 0.5 kB exceeds the device's 0.25 kB"
    assert sram.needed == 2.0 and sram.excess == 1.0
    assert sram.reason() == "sram_kb: peak activation memory in SRAM (at node relu) 2.0 kB exceeds the device's 1 kB"


def test_microcontroller_latency_is_macs_over_the_kernel_rate(mcu):
    t = mcu.target
    int8 = t.estimate(analyze(qdq_dense()))
    assert int8.latency_ms == pytest.approx(64 * 32 / t.macs_per_cycle["dense"] / (t.clock_mhz * 1e3))
    assert int8.energy_mj == pytest.approx(t.active_mw * int8.latency_ms / 1e3)
    g = analyze(conv_net())  # fp32 layers run at the float rate; relu and pool are elementwise
    cycles = g.macs / t.macs_per_cycle["float"] + (4 * 64 + 4) * t.elementwise_cycles
    assert t.estimate(g).latency_ms == pytest.approx(cycles / (t.clock_mhz * 1e3))
    assert "CMSIS-NN" in " ".join(t.sources) and any("assumption" in a for a in t.assumptions)


@pytest.mark.parametrize("name", ["bitserial-sim", "cortex-m7"])
def test_modelled_profiles_save_and_load_equal(name, tmp_path):
    device = load_device_profile(name)
    device.save(tmp_path / "p.yaml")
    assert load_device_profile(tmp_path / "p.yaml") == device


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("target"), r"^.*p.yaml: target is required"),
    (lambda d: d["target"].pop("sources"), r"target.sources is required"),
    (lambda d: d["target"]["macs_per_cycle"].update(conv=0), r"target.macs_per_cycle.conv must be a number in \[1e-06, 1000"),
    (lambda d: d["target"].update(sram=1), r"unknown key target.sram"),
    (lambda d: d["profiler"].update(kind="local"), r"target is read only for the modelled profiler kinds \['bitserial', 'mcu'\], not 'local'"),
])
def test_a_bad_target_section_is_a_clear_error(change, message, mcu, tmp_path):
    data = mcu.to_dict()
    change(data)
    with pytest.raises(ConfigError, match=message):
        DeviceProfile.from_dict(data, str(tmp_path / "p.yaml"))


def test_a_modelled_kind_without_its_target_is_refused():
    device = dataclasses.replace(load_device_profile("local-cpu"), profiler=dataclasses.replace(load_device_profile("local-cpu").profiler, kind="mcu"))
    with pytest.raises(ConfigError, match="profiler.kind 'mcu' needs a target: section"):
        ModelledProfiler(device)


def test_the_profiler_labels_everything_modelled_and_carries_the_limits(mcu, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_net(), path)
    m = ModelledProfiler(_tight(mcu, flash_kb=0.25, sram_kb=320)).measure(path)
    assert m.latency_ms.source == m.energy_mj.source == "modelled"
    assert m.latency["p90_ms"] == m.latency_ms.value and m.latency["n"] == 1
    assert [lim.name for lim in m.limits if lim.excess > 0] == ["flash_kb"]
    assert m.device["graph"]["macs"] == 6920 and m.device["graph"]["peak_activation_bytes"] == 2048
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(Exception, match="modelling .*bad.onnx on cortex-m7 failed"):
        ModelledProfiler(mcu).measure(bad)


def test_autoprune_profile_prints_modelled_numbers_and_the_refusal(mcu, tmp_path, capsys):
    from autoprune.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(conv_net(), path)
    _tight(mcu, flash_kb=0.25, sram_kb=320).save(tmp_path / "small.yaml")
    assert main(["profile", str(path), "--device", str(tmp_path / "small.yaml"), "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "(modelled: microcontroller model: 6,920 MACs" in out and "measured" not in out
    assert "REFUSED: flash_kb: weights and constants in flash 0.5 kB exceeds the device's 0.25 kB" in out
    assert "fits: sram_kb" in out and "2,048 bytes at node relu" in out
