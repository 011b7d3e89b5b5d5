"""Modelled energy: core power over the latency plus per-op and per-byte costs of the kernels a real runtime runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autoprune.costmodel.calibrated import CalibratedProfiler
from autoprune.costmodel.calibration import fit
from autoprune.costmodel.calibrate import kernels_of
from autoprune.device import DeviceProfile, load_device_profile
from autoprune.exceptions import ConfigError


@pytest.fixture(scope="module")
def device():
    return load_device_profile("local-cpu")


def test_local_cpu_states_its_energy_model_and_sources(device):
    m = device.energy_model
    assert m is not None and m.mac_pj["int8"] < m.mac_pj["fp32"]
    assert any("Horowitz" in s for s in m.sources) and m.assumptions
    assert DeviceProfile.from_dict(device.to_dict()).energy_model == m  # survives a save


def test_int8_costs_less_energy_than_fp32_at_the_same_latency(device, artifacts):
    kernels = {bits: kernels_of(artifacts[bits], device) for bits in (32, 8)}
    e = {bits: device.energy_model.estimate(1.0, kernels[bits]) for bits in (32, 8)}
    assert e[32].parts_mj["core"] == e[8].parts_mj["core"] == pytest.approx(device.energy_model.core_watts * 1.0)
    assert e[8].parts_mj["mac_int8"] > 0 and e[32].parts_mj["mac_int8"] == 0
    assert e[8].energy_mj < e[32].energy_mj
    macs = sum(k.features[1] for k in kernels[32]) * 1e6
    assert e[32].parts_mj["mac_fp32"] == pytest.approx(macs * device.energy_model.mac_pj["fp32"] * 1e-9)
    weights = sum(k.weight_mb for k in kernels[32])
    assert weights * 1e6 >= (32 * 16 * 9 + 32 * 9 + 32 * 10) * 4  # at least the conv, depthwise and linear weights, fp32
    assert "pJ" in e[32].how and "Horowitz" in e[32].how


def test_weights_that_do_not_fit_the_cache_come_from_dram(device, artifacts):
    kernels = kernels_of(artifacts[32], device)
    small = dataclasses.replace(device.energy_model, cache_mb=0.0)
    assert small.estimate(1.0, kernels).parts_mj["weights"] > device.energy_model.estimate(1.0, kernels).parts_mj["weights"]


def test_a_calibrated_latency_gets_modelled_energy_from_the_model(device, artifacts):
    kernels = [kernels_of(artifacts[b], device) for b in (32, 8)]
    calibration = fit(kernels, [0.05, 0.04], {"name": device.name})
    m = CalibratedProfiler(device, calibration).measure(artifacts[8])
    assert m.energy_mj.source == "modelled" and "int8 MMACs" in m.energy_mj.how
    expected = device.energy_model.estimate(m.latency_ms.value, kernels[1]).energy_mj
    assert m.energy_mj.value == pytest.approx(expected)
    plain = CalibratedProfiler(dataclasses.replace(device, energy_model=None), calibration).measure(artifacts[8])
    assert plain.energy_mj.value == pytest.approx(device.power_watts * m.latency_ms.value)  # no model: watts x latency


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["model"]["mac_pj"].pop("int8"), "power.model.mac_pj.int8"),
    (lambda p: p["model"].update(sources=[]), "power.model.sources"),
    (lambda p: p["model"]["byte_pj"].update(dram=-1.0), "power.model.byte_pj.dram"),
    (lambda p: p["model"].update(spare=1), "power.model.spare"),
])
def test_a_bad_energy_model_names_its_key(device, edit, key):
    doc = device.to_dict()
    edit(doc["power"])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        DeviceProfile.from_dict(doc, "bad.yaml")


def test_the_kernel_reads_its_weights(artifacts, device):
    """Weight bytes are read from the runtime's graph: int8 weights are a quarter of fp32's (plus scales)."""
    w = {b: np.sum([k.weight_mb for k in kernels_of(artifacts[b], device)]) for b in (32, 8)}
    assert 0 < w[8] < 0.5 * w[32]
