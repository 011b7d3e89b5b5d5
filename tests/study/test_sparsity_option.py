"""build.sparsity: validated in the study YAML, applied after pruning, sparse size estimated."""

from __future__ import annotations

import dataclasses

import onnx
import optuna
import pytest
import yaml
from onnx import numpy_helper

from autoprune.config import StudyConfig
from autoprune.device import load_device_profile
from autoprune.exceptions import ConfigError
from autoprune.plan import Plan
from autoprune.profile import LocalProfiler
from autoprune.study import StudyContext, build, run_study


def fast_profiler() -> LocalProfiler:
    """local-cpu's real profiler with fewer repetitions, for speed."""
    device = load_device_profile("local-cpu")
    return LocalProfiler(dataclasses.replace(device, profiler=dataclasses.replace(device.profiler, warmup=2, repetitions=20, min_duration_s=0.0)))


@pytest.mark.parametrize(
    "build_yaml, message",
    [
        ("{sparsity: 2:4}", r"build.sparsity must be .* got the number 124: quote N:M in YAML"),  # YAML 1.1 base 60
        ("{sparsity: '4:2'}", r"build.sparsity must be 'none', 'unstructured:<ratio>' .* got '4:2'"),
        ("{sparsity: 'unstructured:1.5'}", r"build.sparsity must be .* ratio in \(0, 0.99\].* got 'unstructured:1.5'"),
        ("{sparsity: unstructured}", r"build.sparsity must be .* got 'unstructured'"),
        ("{sparsity: 0.5}", r"build.sparsity must be .* got 0.5"),
        ("{sparsity: '2:4', qat_steps: 10}", r"build.qat_steps must be 0 when build.sparsity is set"),
        ("{qat_steps: -1}", r"build.qat_steps must be an integer in \[0, 1000000\]"),
    ],
)
def test_bad_sparsity_settings_name_the_key(build_yaml, message):
    data = yaml.safe_load(f"version: 1\nname: s\nbuild: {build_yaml}\n")
    with pytest.raises(ConfigError, match=f"^s.yaml: {message}"):
        StudyConfig.from_dict(data, "s.yaml")


@pytest.mark.parametrize("value", ["none", "2:4", "1:4", "unstructured:0.5"])
def test_good_settings_round_trip_and_defaults_are_not_written(value):
    cfg = StudyConfig.from_dict({"version": 1, "name": "s", "build": {"sparsity": value}}, "s.yaml")
    assert cfg.build.sparsity == value and StudyConfig.from_dict(cfg.to_dict()) == cfg
    # left at their defaults, the new keys are not written: studies stored before them still resume
    assert ("sparsity" in cfg.to_dict()["build"]) == (value != "none")
    assert "qat_steps" not in cfg.to_dict()["build"]


@pytest.fixture(scope="module")
def sparse(tiny_config, tmp_path_factory):
    cfg = dataclasses.replace(
        tiny_config, name="sparse",
        search=dataclasses.replace(tiny_config.search, n_trials=3, baselines=("dense-fp32", "dense-int8")),
        build=dataclasses.replace(tiny_config.build, sparsity="2:4"),
    )
    result = run_study(cfg, tmp_path_factory.mktemp("runs") / "sparse", profiler=fast_profiler(), progress=False, log=lambda m: None)
    return cfg, result


def test_two_four_study_reports_estimated_sparse_size_below_the_dense_bytes(sparse):
    cfg, result = sparse
    complete = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 3
    for t in complete:
        m = t.user_attrs["metrics"]
        assert m["size_kb"]["source"] == "estimated" and "2:4 sparse" in m["size_kb"]["how"]
        assert m["onnx_size_kb"] == {"value": t.user_attrs["size_bytes"] / 1024, "unit": "kB", "source": "measured", "how": "bytes of the ONNX artifact / 1024"}
        assert m["size_kb"]["value"] < 0.8 * m["onnx_size_kb"]["value"]
        assert m["accuracy"]["source"] == m["latency_ms"]["source"] == "measured"  # the sparse artifact itself runs here
        assert "sparsify" in t.user_attrs["stage_seconds"]


def test_the_artifact_is_two_four_sparse_after_pruning(sparse):
    cfg, result = sparse
    ctx = StudyContext.prepare(cfg)
    t = next(t for t in result.study.trials if t.user_attrs.get("baseline") == "dense-fp32")
    artifact = build(ctx, Plan.from_dict({"layers": t.user_attrs["plan"]}))
    assert artifact.sha256 == t.user_attrs["sha256"]
    proto = onnx.load_from_string(artifact.onnx_bytes)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    checked = 0
    for node in proto.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            w = inits[node.input[1]]
            rows = w.reshape(w.shape[0], -1)
            rows = rows[:, : rows.shape[1] // 4 * 4].reshape(rows.shape[0], -1, 4)
            assert int((rows != 0).sum(-1).max()) <= 2, node.name  # BatchNorm folding keeps the zeros
            checked += 1
    assert checked >= 5
    # a study without the option builds the same plan dense
    dense_ctx = StudyContext.prepare(dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, sparsity="none")))
    assert build(dense_ctx, Plan.from_dict({"layers": t.user_attrs["plan"]})).sha256 != artifact.sha256


def test_accuracy_drop_reference_is_the_original_model(sparse, tiny_run):
    # the tiny run has the same task and build, without sparsity: its reference must be the same
    _, result = sparse
    assert result.study.user_attrs["dense"]["accuracy"] == tiny_run.study.user_attrs["dense"]["accuracy"]
