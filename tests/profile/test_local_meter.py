"""The local profiler with an energy meter: a fake RAPL sysfs tree (named fake_*) whose counter rises at 10 W."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from autoprune.device import DeviceProfile, ProfilerSettings
from autoprune.profile import LocalProfiler

WATTS = 10.0


def tiny_onnx(path: Path) -> Path:
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 16], np.eye(16, dtype=np.float32).ravel().tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def fake_rapl_at(root: Path, watts: float, stop: threading.Event) -> threading.Thread:
    """A package zone whose ``energy_uj`` a thread keeps at ``watts`` x elapsed time (written atomically)."""
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    t0 = time.monotonic()

    def write() -> None:
        tmp = zone / ".energy_uj"
        tmp.write_text(f"{int(watts * (time.monotonic() - t0) * 1e6)}\n")
        os.replace(tmp, zone / "energy_uj")

    def run() -> None:
        while not stop.wait(0.005):
            write()

    write()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def fake_powercap(tmp_path):
    stop = threading.Event()
    thread = fake_rapl_at(tmp_path / "powercap", WATTS, stop)
    yield {"powercap": str(tmp_path / "powercap"), "hwmon": str(tmp_path / "no-hwmon")}
    stop.set()
    thread.join()


def device() -> DeviceProfile:
    return DeviceProfile(name="metered-box", profiler=ProfilerSettings(warmup=2, repetitions=20), power_watts=15.0, power_source="test figure")


def test_local_profiler_measures_energy_with_a_rapl_meter(tmp_path, fake_powercap):
    profiler = LocalProfiler(device(), meter_roots=fake_powercap)
    m = profiler.measure(tiny_onnx(tmp_path / "m.onnx"))
    assert m.energy_mj.source == "measured" and m.energy_mj.unit == "mJ"
    assert m.device["meter"] == "rapl" and "rapl meter intel-rapl:0 (package-0)" in m.energy_mj.how
    detail = m.device["energy_detail"]
    assert detail["window_s"] >= 1.0 and detail["runs"] == m.latency["n"]  # the window lasted the meter's minimum
    assert m.settings["min_duration_s"] == 1.0
    # the fake counter rises at 10 W: the window's joules are 10 W x its length, shared by its runs
    window_joules = m.energy_mj.value * 1e-3 * detail["runs"]
    assert window_joules == pytest.approx(WATTS * detail["window_s"], rel=0.25)
    assert m.latency_ms.source == "measured"
    assert type(m).from_dict(m.to_dict()) == m


def test_without_a_meter_the_estimate_is_labelled_with_the_reason(tmp_path):
    roots = {"powercap": str(tmp_path / "no-powercap"), "hwmon": str(tmp_path / "no-hwmon")}
    m = LocalProfiler(device(), meter_roots=roots).measure(tiny_onnx(tmp_path / "m.onnx"))
    assert m.energy_mj.source == "estimated" and m.energy_mj.value == pytest.approx(15.0 * m.latency_ms.value)
    assert m.device["meter"].startswith("none")
    assert "does not exist" in m.device["energy_detail"]["reason"] and m.settings["min_duration_s"] == 0.0


def test_an_explicit_empty_meter_order_uses_no_meter(tmp_path, fake_powercap):
    m = LocalProfiler(device(), meter_roots=fake_powercap, meter_order=()).measure(tiny_onnx(tmp_path / "m.onnx"))
    assert m.energy_mj.source == "estimated" and m.device["meter"].startswith("none")
