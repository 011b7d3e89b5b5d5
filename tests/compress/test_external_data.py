"""Models over protobuf's 2 GB limit are built with ONNX external data, end to end.

No test allocates 2 GB: ``EXTERNAL_DATA_THRESHOLD`` is lowered so that a small model goes
down the same path (export to a file, quantization from files, an artifact whose weights are
a file beside the graph) and must give what the in-memory path gives.
"""

from __future__ import annotations

import hashlib
import types

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import autoprune
from autoprune.compress import BuildSettings, external
from autoprune.plan import LayerPlan, Plan
from autoprune.evaluate import evaluate_onnx
from autoprune.device import DeviceProfile, ProfilerSettings
from autoprune.profile.local import LocalProfiler
from autoprune.profile.timing import make_session

SETTINGS = BuildSettings(bn_batches=1, calibration_samples=32)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 3, 16, 16)).astype(np.float32), rng.integers(0, 10, 64)


def _build(bits: int, tmp_path, name: str):
    model, (X, y) = _model(), _data()
    plan = Plan({"0": LayerPlan(ratio=0.25, bits=bits), "3": LayerPlan(bits=bits), "7": LayerPlan(bits=bits)})
    artifact = autoprune.build(model, plan, (X, y), torch.from_numpy(X[:1]), SETTINGS, out=tmp_path / name)
    return artifact, X


@pytest.mark.parametrize("bits", [32, 8])
def test_a_model_over_the_threshold_is_stored_with_external_data_and_computes_the_same(bits, tmp_path, monkeypatch):
    small, X = _build(bits, tmp_path / "in-memory", "model.onnx")
    assert small.external_data is None

    monkeypatch.setattr(external, "EXTERNAL_DATA_THRESHOLD", 1024)
    big, _ = _build(bits, tmp_path / "external", "model.onnx")
    assert big.external_data is not None and big.external_data.file.endswith(".onnx.data")
    graph = onnx.load_from_string(big.onnx_bytes)  # the graph alone: its weights are referred to
    stored = [t for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert stored and all(e.value == big.external_data.file for t in stored for e in t.external_data if e.key == "location")

    # the artifact's facts cover both files
    files = sorted((tmp_path / "external").iterdir())
    assert [f.name for f in files] == sorted(["model.onnx", big.external_data.file])
    assert big.size_bytes == sum(f.stat().st_size for f in files) > len(big.onnx_bytes)
    assert big.sha256 == hashlib.sha256((tmp_path / "external" / "model.onnx").read_bytes()
                                        + (tmp_path / "external" / big.external_data.file).read_bytes()).hexdigest()
    assert big.sha256 != small.sha256

    # read back: the same weights, the same outputs as the one-file artifact, in onnxruntime
    back = onnx.load(str(tmp_path / "external" / "model.onnx"))
    one_file = onnx.load_from_string(small.onnx_bytes)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in one_file.graph.initializer}
    assert {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in back.graph.initializer} == {
        name: w.tobytes() for name, w in weights.items()}
    feeds = {"input": X[:8]}
    out_big = make_session(str(tmp_path / "external" / "model.onnx")).run(None, feeds)[0]
    out_small = make_session(small.onnx_bytes).run(None, feeds)[0]
    np.testing.assert_array_equal(out_big, out_small)
    y = out_small.argmax(1)
    task = types.SimpleNamespace(name="t", score=lambda out, labels: float((out.argmax(1) == labels).mean()))
    assert evaluate_onnx(big, X[:8], y, task).value == evaluate_onnx(small.onnx_bytes, X[:8], y, task).value == 1.0

    # the same build gives the same bytes (the data file's name comes from its content)
    again, _ = _build(bits, tmp_path / "again", "other.onnx")
    assert again.sha256 == big.sha256 and again.external_data == big.external_data


def test_the_local_profiler_measures_an_artifact_with_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(external, "EXTERNAL_DATA_THRESHOLD", 1024)
    big, _ = _build(8, tmp_path, "model.onnx")
    assert big.external_data is not None
    device = DeviceProfile(name="box", profiler=ProfilerSettings(warmup=1, repetitions=5, min_duration_s=0.01))
    m = LocalProfiler(device, meter_order=()).measure(tmp_path / "model.onnx")
    assert m.latency_ms.source == "measured" and m.latency["n"] >= 5


def test_two_artifacts_saved_in_one_directory_keep_their_own_weights(tmp_path, monkeypatch):
    expected = {}
    for bits in (32, 8):
        artifact, X = _build(bits, tmp_path / "one-file", "model.onnx")
        expected[bits] = make_session(artifact.onnx_bytes).run(None, {"input": X[:4]})[0]
    monkeypatch.setattr(external, "EXTERNAL_DATA_THRESHOLD", 1024)
    built = {bits: _build(bits, tmp_path / "shared", f"int{bits}.onnx")[0] for bits in (32, 8)}
    assert built[32].external_data.file != built[8].external_data.file
    for bits in (32, 8):
        out = make_session(str(tmp_path / "shared" / f"int{bits}.onnx")).run(None, {"input": X[:4]})[0]
        np.testing.assert_array_equal(out, expected[bits])


def test_serialize_leaves_the_graph_as_it_was(monkeypatch):
    monkeypatch.setattr(external, "EXTERNAL_DATA_THRESHOLD", 1024)
    proto = autoprune.compress.export_onnx(_model(), torch.zeros(1, 3, 16, 16))
    before = proto.SerializeToString()
    graph, data = external.serialize(proto)
    assert data is not None and len(graph) < len(before)
    assert proto.SerializeToString() == before


def test_a_study_of_a_model_stored_with_external_data_measures_and_confirms_its_fp32_and_int8_trials(tmp_path, tiny_config, monkeypatch):
    import dataclasses

    from autoprune.study import run_study

    monkeypatch.setattr(external, "EXTERNAL_DATA_THRESHOLD", 1024)  # every artifact of the tiny study goes external
    cfg = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search, n_trials=4, baselines=("dense-fp32", "dense-int8")))
    result = run_study(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    complete = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    by_baseline = {t.user_attrs.get("baseline"): t for t in complete}
    for label in ("dense-fp32", "dense-int8"):  # evaluated and timed from the graph and its weights file
        metrics = by_baseline[label].user_attrs["metrics"]
        assert metrics["accuracy"]["source"] == "measured" and metrics["latency_ms"]["value"] > 0
    confirmation = result.study.user_attrs.get("confirmation")
    assert confirmation and confirmation["trials"] and not confirmation["failed"]
