"""The contract every registered energy meter passes, here and on a host with nothing to read.

Parametrized over :data:`autoprune.meters.METERS` itself (a user's meter registered before
collection included): built by its factory, a meter either says it is unavailable, with a
reason, or gives a window's energy over a real onnxruntime session. It never raises
anything else. (tests/meters/test_meters.py drives the built-ins against fake sysfs trees.)
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from autoprune.meters import METERS, EnergyMeter, MeterUnavailable, detect_meter, make_meter, timed_window
from test_meters import fake_hwmon, fake_rapl


@pytest.fixture(scope="module")
def session():
    w = numpy_helper.from_array(np.full((16, 16), 0.01, np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _roots(where: str, tmp_path) -> dict[str, str]:
    powercap, hwmon = tmp_path / "powercap", tmp_path / "hwmon"
    if where == "empty":  # sysfs directories with nothing in them: no driver, no rail
        powercap.mkdir()
        hwmon.mkdir()
    elif where == "fake-sysfs":  # a RAPL package and an INA3221 board (the fakes of test_meters.py)
        fake_rapl(powercap, {"intel-rapl:0": ("package-0", 1_000_000, 10**12)})
        fake_hwmon(hwmon)
    else:
        return {}  # this host's real /sys
    return {"powercap": str(powercap), "hwmon": str(hwmon)}


@pytest.mark.parametrize("where", ["this-host", "empty", "fake-sysfs"])
@pytest.mark.parametrize("name", METERS.names())
def test_meter_reads_a_window_or_says_why_not(name, where, tmp_path, session):
    roots = _roots(where, tmp_path)
    meter = make_meter(name, roots)
    assert isinstance(meter, EnergyMeter) and meter.source in ("measured", "estimated") and meter.min_window_s >= 0
    try:
        meter.probe()
    except MeterUnavailable as e:
        assert str(e), f"{name} is unavailable without saying why"
        detection = detect_meter(order=(name,), roots=roots)
        assert detection.meter is None and detection.reasons[name]  # detection reports it, never raises
        return
    feeds = {"x": np.ones((1, 16), np.float32)}
    stats, reading, reason = timed_window(session, feeds, warmup=2, repetitions=10, meter=meter)
    assert stats["n"] >= 10 and stats["median_ms"] > 0
    if reading is None:  # the window itself failed (a counter vanished): a reason, not an exception
        assert reason
    else:
        assert math.isfinite(reading.mj_per_inference) and reading.mj_per_inference >= 0
        assert reading.source == meter.source and reading.meter == meter.name and reading.runs == stats["n"]
        assert reading.window_s >= meter.min_window_s * 0.99
    assert detect_meter(order=(name,), roots=roots).meter is not None
