"""Activation-range calibration of the int8 artifact: onnxruntime's MinMax or Percentile calibrator."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from autoprune import discover, zoo
from autoprune.compress import quantize_onnx
from autoprune.compress.onnx_export import INPUT_NAME, export_onnx
from autoprune.compress.quantize import Calibration, quantize_int8
from autoprune.exceptions import ConfigError
from autoprune.plan import LayerPlan, Plan


@pytest.fixture(scope="module")
def cnn():
    model, x = zoo.build("cnn"), zoo.example_input("cnn")
    X = zoo.example_input("cnn", batch=128, seed=3).numpy()
    return model, discover(model, x), export_onnx(model, x), X


def _quantize(cnn, calibration) -> onnx.ModelProto:
    model, space, proto, X = cnn
    return quantize_onnx(proto, Plan({"re:.*": LayerPlan(bits=8)}), space, calibration)


def _activation_scales(q: onnx.ModelProto) -> dict[str, float]:
    """Scale of every activation QuantizeLinear (weights are stored already quantized in QDQ)."""
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in q.graph.node if n.op_type == "QuantizeLinear"}


def _run(q: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {INPUT_NAME: X})[0]


def test_percentile_calibration_gives_a_valid_model_with_narrower_ranges_than_minmax(cnn):
    model, space, proto, X = cnn
    mm = _quantize(cnn, X)  # a bare array is min-max, as before
    assert _quantize(cnn, Calibration(X, "minmax")).SerializeToString() == mm.SerializeToString()
    pc = _quantize(cnn, Calibration(X, "percentile", 99.0))
    onnx.checker.check_model(pc)
    assert pc.SerializeToString() != mm.SerializeToString()
    s_mm, s_pc = _activation_scales(mm), _activation_scales(pc)
    assert s_mm.keys() == s_pc.keys()
    assert all(s_pc[k] <= s_mm[k] * (1 + 1e-6) for k in s_mm) and any(s_pc[k] < s_mm[k] * 0.99 for k in s_mm)
    with torch.no_grad():
        ref = model(torch.from_numpy(X)).numpy()
    out = _run(pc, X)
    assert np.isfinite(out).all() and (out.argmax(1) == ref.argmax(1)).mean() > 0.9


def test_percentile_clips_a_calibration_outlier_that_minmax_stretches_the_range_for(cnn):
    model, space, proto, X = cnn
    X_out = X.copy()
    X_out[0].flat[0] = 1e3
    with torch.no_grad():
        ref = model(torch.from_numpy(X[1:])).numpy()
    err = {m: float(np.abs(_run(_quantize(cnn, Calibration(X_out, m, 99.99)), X[1:]) - ref).mean()) for m in ("minmax", "percentile")}
    assert err["percentile"] < err["minmax"] / 2


def test_calibration_is_deterministic_and_the_percentile_matters(cnn):
    model, space, proto, X = cnn
    digest = lambda c: hashlib.sha256(_quantize(cnn, c).SerializeToString()).hexdigest()
    assert digest(Calibration(X, "percentile", 99.9)) == digest(Calibration(X, "percentile", 99.9))
    assert digest(Calibration(X, "percentile", 99.9)) != digest(Calibration(X, "percentile", 99.0))


def test_calibration_settings_are_checked_and_nothing_is_printed(cnn, capsys):
    model, space, proto, X = cnn
    with pytest.raises(ConfigError, match=r"method must be one of \['minmax', 'percentile'\], got 'entropy'"):
        Calibration(X, "entropy")
    with pytest.raises(ConfigError, match=r"percentile must be in \[50, 100\], got 20"):
        Calibration(X, "percentile", 20)
    nodes = [n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    quantize_int8(proto, nodes, [], Calibration(X, "percentile"))
    assert capsys.readouterr().out == ""  # onnxruntime's histogram calibrator prints; the CLI's output stays clean
