"""The contract every registered profiler kind passes, on a tiny real ONNX model.

Parametrized over :data:`autoprune.profile.PROFILERS` itself: the ``agent`` kind runs
against a real agent server on 127.0.0.1; any other kind (a user's, registered before
collection) gets the local-cpu profile with that kind and short timing settings, or the
shipped device profile of that kind when local-cpu is not one (a modelled kind needs its
profile's ``target:`` section). The profilers of ``search.mode`` model and hybrid (the
calibrated cost model, alone or beside the device's profiler) pass the same checks.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autoprune.agent import AgentConfig, AgentServer
from autoprune.costmodel.calibrate import device_facts, graph_level, kernels_of
from autoprune.costmodel.calibrated import CalibratedProfiler
from autoprune.costmodel.calibration import Calibration, fit
from autoprune.device import PROFILE_DIRS, AgentSettings, DeviceProfile, load_device_profile
from autoprune.profile import PROFILERS, Forecast, Measurement, Profiler, make_profiler
from autoprune.study.hybrid import HybridProfiler

TOKEN = "contract-token"
LABELS = ("measured", "modelled", "estimated")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    w = numpy_helper.from_array(np.full((16, 16), 0.01, np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = tmp_path_factory.mktemp("m") / "tiny.onnx"
    onnx.save(m, p)
    return p


@pytest.fixture
def agent_url(tmp_path):
    server = AgentServer(AgentConfig(port=0, token=TOKEN)).start()
    yield server.url
    server.shutdown()


def _base_profile(kind: str) -> DeviceProfile:
    """local-cpu, or the first shipped profile of ``kind`` when it is not local-cpu's (e.g. bitserial-sim, cortex-m7)."""
    local = load_device_profile("local-cpu")
    if kind in ("local", "agent"):
        return local
    shipped = sorted({p for d in PROFILE_DIRS if d.is_dir() for p in d.glob("*.yaml")})
    return next((d for d in map(load_device_profile, shipped) if d.profiler.kind == kind), local)


def _device(kind: str, request, tmp_path) -> DeviceProfile:
    base = _base_profile(kind)
    fast = dataclasses.replace(base.profiler, kind=kind, warmup=2, repetitions=20, min_duration_s=0.0)
    agent = None
    if kind == "agent":
        token = tmp_path / "token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        agent = AgentSettings(urls=(request.getfixturevalue("agent_url"),), token_file=str(token), retries=1, timeout_s=30.0)
    return dataclasses.replace(base, name=f"contract-{kind}", profiler=fast, agent=agent)


@pytest.mark.parametrize("kind", PROFILERS.names())
def test_profiler_measures_a_real_onnx_model(kind, model_path, request, tmp_path):
    check_contract(make_profiler(_device(kind, request, tmp_path)), model_path)


def _calibration(device: DeviceProfile, model_path) -> Calibration:
    """A SYNTHETIC calibration of ``device``: fitted on the tiny model's real kernels, once and twice over, at stated latencies."""
    kernels = kernels_of(model_path, device)
    return fit([kernels, kernels + kernels], [0.01, 0.018], device_facts(device), level=graph_level(device))


@pytest.mark.parametrize("mode", ["model", "hybrid"])
def test_the_study_modes_profilers_pass_the_contract(mode, model_path, tmp_path):
    """``search.mode`` model (the calibrated cost model) and hybrid (it and the device's profiler) are profilers too."""
    device = _device("local", None, tmp_path)
    model = CalibratedProfiler(device, _calibration(device, model_path))
    profiler = model if mode == "model" else HybridProfiler(make_profiler(device), model, ("accuracy", "latency_ms"))
    check_contract(profiler, model_path)


def check_contract(profiler: Profiler, model_path) -> None:
    """What every profiler does with a real ONNX model (``profiler``'s device has repetitions 20)."""
    assert isinstance(profiler, Profiler)
    with profiler:
        for inputs in (None, {"x": np.ones((1, 16), np.float32)}):  # default inputs, then given ones
            m = profiler.measure(model_path, inputs)
            assert isinstance(m, Measurement)
            assert m.latency_ms.unit == "ms" and m.latency_ms.source in LABELS and m.latency_ms.how
            # what the confirmation pass reads before rebuilding anything: a timing profiler's latency is measured
            assert isinstance(profiler.measures_time, bool) and profiler.measures_time == (m.latency_ms.source == "measured")
            assert math.isfinite(m.latency_ms.value) and m.latency_ms.value > 0
            if m.energy_mj is not None:
                assert m.energy_mj.unit == "mJ" and m.energy_mj.source in LABELS and m.energy_mj.value >= 0
            assert Measurement.from_dict(m.to_dict()) == m  # what a trial stores reads back equal

        # what a study's screen holds a plan's untrained twin to (autoprune.study.screen)
        f = profiler.forecast(model_path)
        assert isinstance(profiler.forecasts, bool)
        if not profiler.forecasts:
            assert f is None
        elif f is not None:  # a forecaster may decline a model (hybrid: a prediction of low confidence is timed)
            assert isinstance(f, Forecast) and 0.0 <= f.slack < 1.0
            assert f.measurement.latency_ms.source == "modelled" and f.measurement.latency_ms.value > 0
            if f.slack == 0.0:  # exactly what it reports
                assert f.measurement == profiler.measure(model_path)

        other = profiler.with_settings(repetitions=5)
        assert type(other) is type(profiler) and other.device.profiler.repetitions == 5
        assert profiler.device.profiler.repetitions == 20  # the original is left as it was
        assert other.measure(model_path).latency_ms.value > 0
    profiler.close()  # closing twice is safe


def test_the_agent_kind_is_measured_by_the_agent(model_path, request, tmp_path):
    """The contract's agent case really goes through the server (not a local fallback)."""
    with make_profiler(_device("agent", request, tmp_path)) as profiler:
        m = profiler.measure(model_path)
    assert m.settings["profiler"] == "agent" and m.device["url"] == request.getfixturevalue("agent_url")
