"""The local profiler against a real onnxruntime session."""

import numpy as np
import onnx
from onnx import TensorProto, helper

from autoprune.device import load_device_profile
from autoprune.meters import detect_meter
from autoprune.profile import LocalProfiler, make_profiler
from autoprune.profile.timing import latency_stats


def tiny_onnx(path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 16], np.eye(16, dtype=np.float32).ravel().tolist())
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_local_profiler_measures_with_the_profile_settings(tmp_path):
    dev = load_device_profile("local-cpu")
    prof = make_profiler(dev)
    assert isinstance(prof, LocalProfiler)
    m = prof.measure(tiny_onnx(tmp_path / "m.onnx"))
    assert m.latency_ms.source == "measured" and m.latency_ms.unit == "ms"
    assert m.latency["n"] >= dev.profiler.repetitions
    assert m.latency["p90_ms"] >= m.latency["median_ms"] > 0
    # measured where this host has a readable meter, else the profile's power figure x latency
    metered = detect_meter(dev.profiler.execution_provider).meter is not None
    assert m.energy_mj.source == ("measured" if metered else "estimated") and (metered or "W" in m.energy_mj.how)
    assert m.settings["threads"] == dev.profiler.threads and m.settings["batch_size"] == 1
    assert m.device["onnxruntime"]
    assert type(m).from_dict(m.to_dict()) == m


def test_latency_stats():
    s = latency_stats(np.array([0.001, 0.002, 0.003, 0.004]))
    assert s["median_ms"] == 2.5 and s["n"] == 4 and 0 < s["cv"] < 1
