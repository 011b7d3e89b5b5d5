"""Planned bit-widths reach the right ONNX nodes, on every zoo model, whatever the exporter names them.

The test finds each weighted node's layer on its own, from the weights (dequantized where
the node reads a DequantizeLinear), never from the library's map or from node names.
"""

from __future__ import annotations

import dataclasses

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from autoprune import discover, zoo
from autoprune.compress import export_onnx, quantize_onnx
from autoprune.compress.onnx_export import LAYER_NODES_KEY
from autoprune.exceptions import CandidateError
from autoprune.plan import LayerPlan, Plan
from autoprune.space import QuantLayer

warnings.filterwarnings("ignore", category=UserWarning)


def _weight_of(node: onnx.NodeProto, inits: dict, producers: dict) -> tuple[np.ndarray, bool] | None:
    """The node's weight in torch layout ``(out, in, ...)`` and whether a DequantizeLinear feeds it."""
    name = node.input[1]
    dq = producers.get(name)
    if name in inits:
        w, quantized = inits[name], False
    elif dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
        q, scale = inits[dq.input[0]].astype(np.float64), inits[dq.input[1]]
        zero = inits[dq.input[2]].astype(np.float64) if len(dq.input) > 2 else np.zeros_like(scale)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.ndim:
            shape[axis] = -1
        w, quantized = (q - zero.reshape(shape)) * scale.reshape(shape), True
    else:
        return None  # an activation (attention scores)
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not next((a.i for a in node.attribute if a.name == "transB"), 0)):
        w = w.T
    return w, quantized


def _channel_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |cosine| of the output channels: 1 for equal weights, folded BatchNorm scales and int8 rounding alike."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    num = np.abs((a * b).sum(1))
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.divide(num, den, out=np.ones_like(num), where=den > 0)))


def _quantized_layers(model: nn.Module, space, proto: onnx.ModelProto) -> dict[str, set[bool]]:
    """``{layer: {quantized?, ...}}`` over the weighted nodes computing with each layer's weight."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    weights = {q.name: model.get_submodule(q.name).weight.detach().numpy() for q in space.layers}
    found: dict[str, set[bool]] = {}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        got = _weight_of(node, inits, producers)
        if got is None:
            continue
        w, quantized = got
        scores = {name: _channel_similarity(tw, w) for name, tw in weights.items() if tw.shape == w.shape}
        if not scores or max(scores.values()) < 0.99:
            continue  # a node of no searched layer
        found.setdefault(max(scores, key=scores.get), set()).add(quantized)
    return found


@pytest.mark.parametrize("arch", zoo.names())
@pytest.mark.parametrize("parity", [0, 1])
def test_every_layer_planned_at_8_is_quantized_and_every_layer_at_32_is_not(arch, parity):
    model, x = zoo.build(arch), zoo.example_input(arch)
    space = discover(model, x)
    bits = {q.name: 8 if i % 2 == parity else 32 for i, q in enumerate(space.layers)}
    calib = zoo.example_input(arch, batch=16, seed=2).numpy()
    proto = quantize_onnx(export_onnx(model, x), Plan({k: LayerPlan(bits=b) for k, b in bits.items()}), space, calib)
    found = _quantized_layers(model, space, proto)
    assert set(found) == set(bits), f"{arch}: layers without a node: {sorted(set(bits) - set(found))}"
    wrong = {name: (bits[name], sorted(q)) for name, q in found.items() if q != {bits[name] == 8}}
    assert not wrong, f"{arch}: planned bits vs quantized weights of their nodes: {wrong}"
    assert LAYER_NODES_KEY not in {p.key for p in proto.metadata_props}  # the artifact does not carry the map


class _Detour(nn.Module):
    """``hidden``'s weight reaches the graph only flipped, so no node computes with the weight as the layer holds it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.head = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(x @ self.hidden.weight.flip(1).t() + self.hidden.bias))


def test_a_layer_planned_at_8_that_the_graph_lacks_is_an_error_naming_it():
    model, x = _Detour().eval(), torch.randn(1, 8)
    space = discover(model, x)
    # discover no longer offers bits to a module whose forward never runs (its weight is used functionally) ...
    assert "hidden" not in {q.name for q in space.layers}
    assert any(e.name == "hidden" and e.what == "quantize" and "does not run" in e.reason for e in space.excluded)
    # ... and quantize_onnx still refuses, naming it, a space that does offer them
    space = dataclasses.replace(space, layers=(*space.layers, QuantLayer("hidden", "linear", 0.0, (8, 32))),
                                excluded=tuple(e for e in space.excluded if e.name != "hidden"))
    proto = export_onnx(model, x)
    with pytest.raises(CandidateError, match=r"layer hidden is planned at 8 bits but no Conv/Gemm/MatMul node"):
        quantize_onnx(proto, Plan({"re:.*": LayerPlan(bits=8)}), space, torch.randn(16, 8).numpy())
    # at 32 bits nothing needs finding: the graph is exported as it is
    fp32 = quantize_onnx(proto, Plan({"head": LayerPlan(bits=8)}), space, torch.randn(16, 8).numpy())
    assert any(n.op_type == "DequantizeLinear" for n in fp32.graph.node)


def test_quantize_onnx_leaves_its_input_as_it_was():
    model, x = zoo.build("cnn"), zoo.example_input("cnn")
    space, proto = discover(model, x), export_onnx(model, x)
    before = proto.SerializeToString()
    calib = zoo.example_input("cnn", batch=16, seed=2).numpy()
    a, b = (quantize_onnx(proto, Plan({"re:.*": LayerPlan(bits=8)}), space, calib).SerializeToString() for _ in range(2))
    assert a == b and proto.SerializeToString() == before


def test_a_graph_not_exported_by_autoprune_is_refused_with_the_reason():
    model, x = zoo.build("mlp"), zoo.example_input("mlp")
    proto = export_onnx(model, x)
    del proto.metadata_props[:]
    with pytest.raises(CandidateError, match="export it with autoprune.compress.export_onnx"):
        quantize_onnx(proto, Plan({}), discover(model, x), None)
