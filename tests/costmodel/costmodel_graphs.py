"""Small hand-built ONNX graphs whose MACs and memory are computed by hand in the tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autoprune.costmodel.planned import record_planned_bits


def model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "hand", inputs, outputs, initializers)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def f32(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def const(name, *shape, dtype=np.float32):
    return numpy_helper.from_array(np.full(shape, 1, dtype), name)


def conv_net() -> onnx.ModelProto:
    """input (1,3,8,8) -> Conv 4x3x3x3 pad 1 -> Relu -> GlobalAveragePool -> Flatten -> Gemm 2x4 -> output (1,2)."""
    nodes = [
        helper.make_node("Conv", ["input", "W1", "B1"], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["output"], "fc", transB=1),
    ]
    return model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
                 [const("W1", 4, 3, 3, 3), const("B1", 4), const("W2", 2, 4), const("B2", 2)])


def residual_net() -> onnx.ModelProto:
    """x (1,4,8,8) -> depthwise Conv 4x1x3x3 (group 4) -> Relu -> Add(., x) -> output: x stays live until the Add."""
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], "dw", pads=[1, 1, 1, 1], group=4),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("Add", ["r", "x"], ["output"], "add"),
    ]
    return model(nodes, [f32("x", 1, 4, 8, 8)], [f32("output", 1, 4, 8, 8)], [const("W", 4, 1, 3, 3)])


def attention_scores() -> onnx.ModelProto:
    """MatMul of two activations: (2,3,4) @ (2,4,5) -> (2,3,5)."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["output"], "scores")]
    return model(nodes, [f32("a", 2, 3, 4), f32("b", 2, 4, 5)], [f32("output", 2, 3, 5)], [])


def qdq_dense(planned: tuple[int, int] | None = None, k: int = 64, n: int = 32) -> onnx.ModelProto:
    """input (1,k) -> Quantize/Dequantize (uint8) -> MatMul with an int8 weight behind a DequantizeLinear -> output (1,n).

    ``planned``: (weight bits, activation bits) recorded for the MatMul as a stand-in layer.
    """
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "zu"], ["xq"], "q_in"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zu"], ["xd"], "dq_in"),
        helper.make_node("DequantizeLinear", ["Wq", "s", "zi"], ["Wd"], "dq_w"),
        helper.make_node("MatMul", ["xd", "Wd"], ["output"], "fc"),
    ]
    inits = [const("Wq", k, n, dtype=np.int8), numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.uint8), "zu"), numpy_helper.from_array(np.array(0, np.int8), "zi")]
    m = model(nodes, [f32("input", 1, k)], [f32("output", 1, n)], inits)
    if planned is not None:
        record_planned_bits(m, {"fc": ["fc"]}, {"fc": planned[0]}, planned[1])
    return m
