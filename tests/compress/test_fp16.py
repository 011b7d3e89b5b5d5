"""float16 layers: chosen nodes compute in fp16 behind Casts; graph io stays fp32; ORT agrees."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import autoprune
from autoprune import zoo
from autoprune.exceptions import PlanError
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_fp16_plan_exports_a_checked_mixed_precision_graph(arch, tmp_path):
    model, x = zoo.build(arch), zoo.example_input(arch)
    space = autoprune.discover(model, x, bits=(8, 16, 32))
    first = space.layers[0].name
    plan = Plan({"re:.*": LayerPlan(bits=16), first: LayerPlan(bits=8)})
    calib = zoo.example_input(arch, batch=16, seed=1).numpy()
    path = tmp_path / "m.onnx"
    autoprune.to_onnx(model, plan, x, path, calib, space=space)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    half = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(half) >= len(space.layers) - 1 and any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    make_session(str(path))  # onnxruntime loads the mixed graph

    autoprune.to_onnx(model, Plan({"re:.*": LayerPlan(bits=16)}), x, path, space=space)
    s = make_session(str(path))
    out = s.run(None, {s.get_inputs()[0].name: calib[:4]})[0]
    ref = model(torch.from_numpy(calib[:4])).detach().numpy()
    assert np.abs(out - ref).max() < 1e-2 * np.abs(ref).max()  # fp16 rounding only


def test_bits_below_8_are_refused_for_onnx(tmp_path):
    model, x = zoo.build("mlp"), zoo.example_input("mlp")
    space = autoprune.discover(model, x, bits=(4, 8, 32))
    with pytest.raises(PlanError, match="below 8 are simulated"):
        autoprune.to_onnx(model, Plan({"head": LayerPlan(bits=4)}), x, tmp_path / "m.onnx", space=space)
