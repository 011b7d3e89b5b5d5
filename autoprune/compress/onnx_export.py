"""Export a (pruned) torch model to ONNX, and find which ONNX nodes compute with which layer's weights.

Which node implements which layer is found from the weights themselves, never from node
names (exporters name nodes as they like): a Conv, ConvTranspose, Gemm or MatMul node
belongs to the torch layer whose weight its constant weight input is, as stored (an
initializer named ``<layer>.weight``), transposed (a Linear exported as MatMul, or Gemm
without ``transB``), or scaled per output channel (a BatchNorm the exporter folded into the
conv). :func:`export_onnx` records that map in the graph; :func:`take_layer_nodes` reads it
and strips it again, so a built artifact's bytes do not carry it.
"""

from __future__ import annotations

import contextlib

import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..exceptions import CandidateError
from ..inputs import INPUT_NAME, Inputs, input_names
from . import external

__all__ = ["export_onnx", "layer_nodes", "take_layer_nodes", "OPSET", "INPUT_NAME", "OUTPUT_NAME", "LAYER_NODES_KEY", "WEIGHTED_OPS"]

OPSET = 17
OUTPUT_NAME = "output"
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
WEIGHTED_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
# Model metadata key of the layer -> nodes map, from export to quantization (stripped there).
LAYER_NODES_KEY = "autoprune.layer_nodes"


@contextlib.contextmanager
def _positional(model: nn.Module, example_input: Inputs) -> Iterator[None]:
    """For dict inputs, ``model``'s forward takes them by position while exporting, and calls the real one by name.

    The TorchScript exporter passes keyword inputs positionally, with every parameter of the
    signature in between at its default (``BertModel(..., use_cache=None)``), which a forward
    that also sets such a parameter itself rejects. The module tree is not wrapped, so node
    names keep the model's module paths (the layer map reads them).
    """
    if not isinstance(example_input, Mapping):
        yield
        return
    keys, forward = list(example_input), model.forward
    model.forward = lambda *tensors: forward(**dict(zip(keys, tensors)))
    try:
        yield
    finally:
        del model.forward  # the class's forward again


def _averaging(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of adaptive average pooling along one axis (PyTorch's bins: floor to ceil)."""
    a = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        a[i, start:end] = 1.0 / (end - start)
    return a


def _pool_as_matmul(pool: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``pool``'s forward, computed as products with averaging matrices where ONNX cannot export it.

    ONNX export of adaptive average pooling needs each output size to divide its input size.
    VGG's and AlexNet's classifiers pool to 7x7 and 6x6, so at a smaller input (64x64: 2x2
    feature maps) the model cannot be exported as it is. Adaptive average pooling is linear
    along each axis, so it is exactly ``A_h @ x @ A_w^T``: two MatMuls with constant matrices.
    """
    forward = pool.forward
    dims = 1 if isinstance(pool, nn.AdaptiveAvgPool1d) else 2

    def pooled(x: torch.Tensor) -> torch.Tensor:
        size = pool.output_size if isinstance(pool.output_size, (tuple, list)) else (pool.output_size,) * dims
        shape = [int(n) for n in x.shape[-dims:]]
        out = [shape[i] if size[i] is None else int(size[i]) for i in range(dims)]
        if all(n % o == 0 for n, o in zip(shape, out)):
            return forward(x)  # exports as it is
        mats = [torch.from_numpy(_averaging(n, o)).to(x.dtype) for n, o in zip(shape, out)]
        if dims == 1:
            return torch.matmul(x, mats[0].T)
        return torch.matmul(torch.matmul(mats[0], x), mats[1].T)

    return pooled


@contextlib.contextmanager
def _exportable_pooling(model: nn.Module) -> Iterator[None]:
    """While exporting, adaptive average pools whose output does not divide their input run as MatMuls (:func:`_pool_as_matmul`)."""
    pools = [m for m in model.modules() if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d))]
    for m in pools:
        m.forward = _pool_as_matmul(m)
    try:
        yield
    finally:
        for m in pools:
            del m.forward  # the class's forward again


def export_onnx(model: nn.Module, example_input: Inputs) -> onnx.ModelProto:
    """The model as ONNX (opset 17, dynamic batch axis), eval mode, BatchNorm folded into convs.

    One tensor exports as the input :data:`INPUT_NAME`; a dict of tensors (keyword arguments,
    e.g. ``input_ids`` and ``attention_mask``) as one input per key, named by it, each with its
    own dtype.

    Adaptive average pooling to a size that does not divide its input (VGG's 7x7 at a small
    input) exports as the equivalent MatMuls, which ONNX can hold.

    Uses the TorchScript-based exporter: it is deterministic and an order of magnitude
    faster than the torch.export-based one for the small graphs searched here. The graph's
    metadata holds :func:`layer_nodes` under :data:`LAYER_NODES_KEY`. A model whose
    parameters exceed :data:`~autoprune.compress.external.EXTERNAL_DATA_THRESHOLD` is
    exported to a file (the exporter writes its weights as external data there) and read
    back with them, since protobuf cannot hold it in one message.
    """
    large = external.is_large(external.param_bytes(model))
    tmp = tempfile.TemporaryDirectory(prefix="autoprune-export-") if large else None
    buf = os.path.join(tmp.name, "model.onnx") if tmp else io.BytesIO()
    model = model.eval()
    names = input_names(example_input)
    args = tuple(example_input.values()) if isinstance(example_input, Mapping) else (example_input,)
    try:
        with warnings.catch_warnings(), _positional(model, example_input), _exportable_pooling(model):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, args, buf, dynamo=False, opset_version=OPSET,
                input_names=names, output_names=[OUTPUT_NAME],
                dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT_NAME]},
                do_constant_folding=True,
            )
        proto = onnx.load(buf) if tmp else onnx.load_from_string(buf.getvalue())  # onnx.load reads the external data
    except Exception as e:  # the exporter raises many types
        raise CandidateError(f"ONNX export failed: {type(e).__name__}: {e}") from e
    finally:
        if tmp:
            tmp.cleanup()
    proto.producer_name = "autoprune"
    entry = proto.metadata_props.add()
    entry.key, entry.value = LAYER_NODES_KEY, json.dumps(layer_nodes(model, proto))
    return proto


def take_layer_nodes(proto: onnx.ModelProto) -> tuple[dict[str, list[str]], onnx.ModelProto]:
    """The layer -> nodes map :func:`export_onnx` recorded, and a copy of ``proto`` without it.

    Raises:
        CandidateError: ``proto`` was not made by :func:`export_onnx` (it has no map).
    """
    found = [p.value for p in proto.metadata_props if p.key == LAYER_NODES_KEY]
    if not found:
        raise CandidateError(
            f"the ONNX graph has no {LAYER_NODES_KEY!r} metadata: export it with autoprune.compress.export_onnx, "
            "which records which nodes compute with which layer's weights"
        )
    clean = onnx.ModelProto()
    clean.CopyFrom(proto)
    kept = [(p.key, p.value) for p in clean.metadata_props if p.key != LAYER_NODES_KEY]
    del clean.metadata_props[:]
    for key, value in kept:
        entry = clean.metadata_props.add()
        entry.key, entry.value = key, value
    return json.loads(found[0]), clean


def _constants(proto: onnx.ModelProto, names: set[str]) -> dict[str, np.ndarray]:
    """The named initializers and Constant-node outputs, as arrays."""
    out = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if t.name in names}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output[0] in names:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                out[node.output[0]] = numpy_helper.to_array(value)
    return out


def _as_torch_layout(node: onnx.NodeProto, w: np.ndarray) -> np.ndarray | None:
    """A node's weight in the layout of the torch module's ``weight`` (``(out, in, ...)``), or None."""
    if node.op_type == "MatMul":  # x @ W: W is (in, out)
        return w.T if w.ndim == 2 else None
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return w if trans_b else w.T
    return w


def _same_up_to_channel_scale(torch_w: np.ndarray, onnx_w: np.ndarray) -> bool:
    """``onnx_w`` is ``torch_w`` with each output channel (dim 0) multiplied by one factor (1 included)."""
    if torch_w.shape != onnx_w.shape:
        return False
    if np.array_equal(torch_w, onnx_w):
        return True
    a = torch_w.reshape(len(torch_w), -1).astype(np.float64)
    b = onnx_w.reshape(len(onnx_w), -1).astype(np.float64)
    aa = (a * a).sum(1)
    scale = np.divide((a * b).sum(1), aa, out=np.zeros_like(aa), where=aa > 0)
    err = np.abs(b - scale[:, None] * a).max(1)
    return bool((err <= 1e-5 * np.abs(b).max(1) + 1e-12).all())


def layer_nodes(model: nn.Module, proto: onnx.ModelProto) -> dict[str, list[str]]:
    """``{layer: [node names]}``: the weighted ONNX nodes whose weight is that conv/linear layer's.

    A node belongs to the layer whose weight its constant weight input equals, transposed or
    scaled per output channel as the exporter left it (see the module docstring). Nodes whose
    weight is not a constant (a MatMul of two activations) or no layer's belong to none. When
    layers hold identical weights, nodes go to them in graph and model order.
    """
    weighted = [n for n in proto.graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1]
    consts = _constants(proto, {n.input[1] for n in weighted})
    layers = {name: m.weight.detach().cpu().float().numpy() for name, m in model.named_modules()
              if isinstance(m, WEIGHTED_MODULES) and isinstance(getattr(m, "weight", None), torch.Tensor)}
    out: dict[str, list[str]] = {}
    for node in weighted:
        w = consts.get(node.input[1])
        w = None if w is None else _as_torch_layout(node, w)
        if w is None:
            continue
        named = node.input[1].removesuffix(".weight")
        if named in layers and _same_up_to_channel_scale(layers[named], w):
            match = [named]
        else:
            match = [name for name, tw in layers.items() if _same_up_to_channel_scale(tw, w)]
        if match:
            layer = next((name for name in match if name not in out), match[0])
            out.setdefault(layer, []).append(node.name)
    return out
