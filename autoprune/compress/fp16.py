"""float16 for chosen layers of an exported graph, keeping fp32 inputs and outputs.

Each chosen Conv/Gemm/MatMul gets float16 weights (and bias), a ``Cast`` to float16 on its
activation input and a ``Cast`` back to float32 on its output, so the graph's interface and
every other layer stay fp32 (the "keep io types" conversion, node by node). Use it for
targets whose device profile lists ``16`` in ``bits`` (GPUs, NPUs, ARM CPUs with fp16
kernels); onnxruntime's x86 CPU provider has fp16 kernels for few ops.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["convert_fp16"]

FP16_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def convert_fp16(proto: onnx.ModelProto, nodes: list[str]) -> onnx.ModelProto:
    """A copy of ``proto`` with the named weighted nodes computing in float16.

    Args:
        proto: The fp32 model.
        nodes: Names of Conv/Gemm/MatMul nodes to convert (others are ignored).

    Returns:
        The converted model; it passes ``onnx.checker``.
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    wanted = set(nodes)
    inits = {t.name: t for t in graph.initializer}
    converted: dict[str, str] = {}  # fp32 initializer -> its fp16 copy (shared weights converted once)
    new_nodes = []
    for node in graph.node:
        if node.name not in wanted or node.op_type not in FP16_OPS:
            new_nodes.append(node)
            continue
        inputs = []
        for i, name in enumerate(node.input):
            if name in inits:
                if name not in converted:
                    half = numpy_helper.from_array(numpy_helper.to_array(inits[name]).astype(np.float16), f"{name}_fp16")
                    graph.initializer.append(half)
                    converted[name] = half.name
                inputs.append(converted[name])
            elif name:
                cast = f"{node.name}_in{i}_fp16"
                new_nodes.append(helper.make_node("Cast", [name], [cast], name=f"{node.name}/CastIn{i}", to=TensorProto.FLOAT16))
                inputs.append(cast)
            else:
                inputs.append(name)
        result = node.output[0]
        node.input[:] = inputs
        node.output[0] = f"{result}_fp16"
        new_nodes.append(node)
        new_nodes.append(helper.make_node("Cast", [node.output[0]], [result], name=f"{node.name}/CastOut", to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]  # shapes/types of renamed tensors are re-inferred
    onnx.checker.check_model(out)
    return out
