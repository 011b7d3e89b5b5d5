"""What an ONNX graph asks of a target: MACs per node, weight bytes by bit-width, peak activation memory.

Everything is read from the artifact itself, with shapes from ``onnx.shape_inference`` at a
fixed batch size. The graph is taken as an integer target runs it:

* Quantize/DequantizeLinear, Reshape, Flatten, Squeeze, Unsqueeze and Identity only
  reinterpret a tensor (int8 kernels fuse the requantization), so they do no work and their
  output shares their input's buffer.
* A weight's bit-width is its stored initializer's (int8 behind a DequantizeLinear, fp16,
  fp32); an activation read through a DequantizeLinear is read at its quantized width.
* Layers the plan put below 8 bits are built as int8 stand-ins; the build records their
  planned weight and activation bits in the model's metadata (:mod:`.planned`), and those
  replace the stand-in's 8 bits here.
* An activation buffer is stored at the widest precision any of its readers takes it in,
  lives from the node that writes it to the last node that reads it (graph outputs to the
  end), and the peak is the largest total of buffers live while one node runs (its inputs
  and outputs together), walking the nodes in the graph's topological order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

from .planned import read_planned_bits

__all__ = ["NodeCost", "GraphCost", "analyze", "VIEW_OPS"]

# Ops that do no work on an integer target and whose output is a view of their first input.
VIEW_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
# Ops through which a weight input is traced back to its stored initializer.
_WEIGHT_PATH_OPS = frozenset({"DequantizeLinear", "Cast", "Transpose", "Reshape", "Identity", "Unsqueeze", "Squeeze"})
_NO_WORK_OPS = frozenset({"Constant", "Shape"})
_SUB_BYTE = {TensorProto.INT4: 4, TensorProto.UINT4: 4}


@dataclasses.dataclass(frozen=True)
class NodeCost:
    """The work of one node.

    Attributes:
        name: The node's name (or ``op_type#index`` when it has none).
        op_type: The ONNX op.
        kind: ``conv``, ``depthwise``, ``dense`` (Gemm/MatMul with a constant weight),
            ``matmul`` (of two activations) or ``elementwise`` (everything else that works).
        macs: Multiply-accumulates at the analysed batch size (0 for ``elementwise``).
        weight_bits: Bits of its constant weight (0: none).
        act_bits: Bits its first input is read at.
        input_elements: Elements of its first input.
        output_elements: Elements of its first output.
        output_bits: Bits its first output is stored at.
    """

    name: str
    op_type: str
    kind: str
    macs: int
    weight_bits: int
    act_bits: int
    input_elements: int
    output_elements: int
    output_bits: int


@dataclasses.dataclass(frozen=True)
class GraphCost:
    """A graph's work and memory.

    Attributes:
        nodes: The working nodes, in graph order (view ops left out).
        weight_bytes_by_bits: Bytes of the weighted nodes' weights, packed at each bit-width.
        other_constant_bytes: Bytes of every other constant (biases, scales, zero points, shapes).
        peak_activation_bytes: The most activation memory live at once (see the module docstring).
        peak_node: The node running at that peak.
        batch_size: The batch the shapes were inferred at.
    """

    nodes: tuple[NodeCost, ...]
    weight_bytes_by_bits: dict[int, int]
    other_constant_bytes: int
    peak_activation_bytes: int
    peak_node: str
    batch_size: int

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def constant_bytes(self) -> int:
        """Everything a target stores with the model: packed weights and the other constants."""
        return sum(self.weight_bytes_by_bits.values()) + self.other_constant_bytes


def _dtype_bits(elem_type: int) -> int:
    if elem_type in _SUB_BYTE:
        return _SUB_BYTE[elem_type]
    return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize * 8)


def _fix_input_shapes(model: onnx.ModelProto, batch_size: int, shapes: Mapping[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy whose graph inputs have concrete dims: ``shapes`` where given, else the batch on a symbolic first dim."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {t.name for t in fixed.graph.initializer}
    for value in fixed.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        given = shapes.get(value.name)
        if given is not None and len(given) != len(dims):
            raise ValueError(f"input {value.name!r} has {len(dims)} dims in the graph, {len(given)} given")
        for i, d in enumerate(dims):
            if given is not None:
                d.dim_value = int(given[i])
            elif not d.HasField("dim_value"):
                if i != 0:
                    raise ValueError(f"input {value.name!r} has a symbolic dim {i} ({d.dim_param or '?'}): give inputs to fix it")
                d.dim_value = batch_size
    return fixed


def _shapes(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """Every tensor's shape and element type, after shape inference."""
    # data_prop: reshapes whose target shape is computed (Shape -> Gather -> Concat), as attention exports have
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes, types = {}, {}
    g = inferred.graph
    for t in g.initializer:
        shapes[t.name], types[t.name] = tuple(t.dims), t.data_type
    for v in [*g.input, *g.value_info, *g.output]:
        tt = v.type.tensor_type
        types[v.name] = tt.elem_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[v.name] = tuple(d.dim_value for d in tt.shape.dim)
    return shapes, types


def _elements(shapes: dict[str, tuple[int, ...]], name: str) -> int:
    if name not in shapes:
        raise ValueError(f"tensor {name!r} has no inferred shape")
    return math.prod(shapes[name])


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """Multiply-accumulates of a Conv, ConvTranspose, Gemm or MatMul node."""
    op = node.op_type
    if op == "Conv":  # every output element sums over (C_in / group) x kernel inputs
        w = shapes[node.input[1]]
        return _elements(shapes, node.output[0]) * math.prod(w[1:])
    if op == "ConvTranspose":  # every input element scatters into (C_out / group) x kernel outputs
        w = shapes[node.input[1]]
        return _elements(shapes, node.input[0]) * math.prod(w[1:])
    a = shapes[node.input[0]]
    if op == "Gemm":
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return _elements(shapes, node.output[0]) * k
    return _elements(shapes, node.output[0]) * a[-1]  # MatMul: (..., M, K) @ (..., K, N)


def _kind(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]], has_weight: bool) -> str:
    if node.op_type in ("Conv", "ConvTranspose"):
        group = _attr(node, "group", 1)
        return "depthwise" if group > 1 and shapes[node.input[1]][1] == 1 else "conv"
    if node.op_type in ("Gemm", "MatMul"):
        return "dense" if has_weight else "matmul"
    return "elementwise"


def _check_order(g: onnx.GraphProto) -> None:
    """Every node reads only graph inputs, initializers and earlier nodes' outputs (ONNX requires it; the walk relies on it)."""
    available = {v.name for v in g.input} | {t.name for t in g.initializer}
    for node in g.node:
        missing = [i for i in node.input if i and i not in available]
        if missing:
            raise ValueError(f"node {node.name or node.op_type} reads {missing[0]!r} before any node writes it: "
                             "the graph is not topologically ordered")
        available.update(node.output)


def analyze(model: onnx.ModelProto, batch_size: int = 1, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> GraphCost:
    """The work and memory of ``model`` at ``batch_size`` (or at the given input shapes).

    Args:
        model: An ONNX model; a built artifact's planned bits (metadata) are applied.
        batch_size: Replaces a symbolic first dim of each graph input.
        input_shapes: ``{input name: shape}`` overriding the graph's input dims.

    Raises:
        ValueError: a shape cannot be inferred, or the graph is not topologically ordered.
    """
    g = model.graph
    _check_order(g)
    shapes, types = _shapes(_fix_input_shapes(model, batch_size, input_shapes or {}))
    planned = read_planned_bits(model)
    constants = {t.name: t for t in g.initializer}
    for node in g.node:  # Constant nodes are constants too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            constants[node.output[0]] = node.attribute[0].t
            shapes.setdefault(node.output[0], tuple(node.attribute[0].t.dims))
    producer = {o: n for n in g.node for o in n.output}
    # Tensors computed from constants alone (a weight's DequantizeLinear, a folded shape) are not activations.
    derived = set(constants)
    for node in g.node:
        if all(i in derived for i in node.input if i):
            derived.update(node.output)

    def stored_weight(name: str) -> str | None:
        """The constant a weight input is read from, through dequantization, casts and transposes."""
        while name not in constants:
            node = producer.get(name)
            if node is None or node.op_type not in _WEIGHT_PATH_OPS:
                return None
            name = node.input[0]
        return name

    # Bits each tensor is held at: a view keeps its input's (a QuantizeLinear sets its own).
    bits: dict[str, int] = {name: _dtype_bits(t) for name, t in types.items() if t}
    bits.update({name: _dtype_bits(t.data_type) for name, t in constants.items()})
    root: dict[str, str] = {}
    for node in g.node:
        if node.op_type in VIEW_OPS and node.input[0] not in derived:
            root[node.output[0]] = root.get(node.input[0], node.input[0])
            if node.op_type != "QuantizeLinear":
                bits[node.output[0]] = bits.get(node.input[0], 32)

    weights: dict[str, int] = {}  # stored weight -> bits it is stored at on the target
    nodes: list[NodeCost] = []
    reads: list[tuple[int, str, int]] = []  # (step, buffer, bits read at)
    writes: dict[str, int] = {}  # buffer -> step that writes it
    step = -1
    for index, node in enumerate(g.node):
        if node.op_type in VIEW_OPS or node.op_type in _NO_WORK_OPS or node.output[0] in derived:
            continue  # views, and constant folding left undone, do no work at run time
        step += 1
        name = node.name or f"{node.op_type}#{index}"
        weight = stored_weight(node.input[1]) if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") else None
        wbits = bits[weight] if weight else 0
        abits = bits.get(node.input[0], 32)
        if node.name in planned:
            wbits, abits = planned[node.name]
        if weight:
            weights[weight] = max(weights.get(weight, 0), wbits)
        kind = _kind(node, shapes, weight is not None)
        for pos, i in enumerate(node.input):
            if i and i not in derived:
                reads.append((step, root.get(i, i), abits if pos == 0 else bits.get(i, 32)))
        for o in node.output:
            writes[root.get(o, o)] = step
        nodes.append(NodeCost(
            name=name, op_type=node.op_type, kind=kind,
            macs=_macs(node, shapes) if kind != "elementwise" else 0,
            weight_bits=wbits, act_bits=abits,
            input_elements=_elements(shapes, node.input[0]), output_elements=_elements(shapes, node.output[0]),
            output_bits=bits.get(node.output[0], 32),
        ))
    peak, peak_node = _peak(g, nodes, reads, writes, root, shapes, bits, step)
    by_bits: dict[int, int] = {}
    for w, b in weights.items():
        by_bits[b] = by_bits.get(b, 0) + math.ceil(_elements(shapes, w) * b / 8)
    other = sum(math.ceil(_elements(shapes, c) * _dtype_bits(t.data_type) / 8) for c, t in constants.items() if c not in weights)
    return GraphCost(tuple(nodes), dict(sorted(by_bits.items())), other, peak, peak_node, batch_size)


def _peak(g: onnx.GraphProto, nodes: list[NodeCost], reads: list[tuple[int, str, int]], writes: dict[str, int],
          root: dict[str, str], shapes: dict[str, tuple[int, ...]], bits: dict[str, int], last: int) -> tuple[int, str]:
    """Largest total of live activation buffers while one node runs, and that node."""
    width: dict[str, int] = {}
    last_read: dict[str, int] = {}
    for step, buf, b in reads:
        width[buf] = max(width.get(buf, 0), b)
        last_read[buf] = max(last_read.get(buf, -1), step)
    for out in g.output:  # outputs stay until the end, at the width the graph gives them
        buf = root.get(out.name, out.name)
        width[buf] = max(width.get(buf, 0), bits.get(out.name, 32))
        last_read[buf] = last
    start = {buf: writes.get(buf, 0) for buf in width}
    size = {buf: math.ceil(_elements(shapes, buf) * (width[buf] or bits.get(buf, 32)) / 8) for buf in width}
    for buf in writes:  # written, never read: lives while it is written
        size.setdefault(buf, math.ceil(_elements(shapes, buf) * bits.get(buf, 32) / 8))
        start.setdefault(buf, writes[buf])
        last_read.setdefault(buf, writes[buf])
    peak, at = 0, ""
    for step, node in enumerate(nodes):
        live = sum(s for buf, s in size.items() if start[buf] <= step <= last_read[buf])
        if live > peak:
            peak, at = live, node.name
    return peak, at
