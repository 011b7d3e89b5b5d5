"""Export a (pruned) torch model to ONNX, and find which ONNX nodes implement which module."""

from __future__ import annotations

import io
import re
import warnings

import onnx
import torch
from torch import nn

from ..exceptions import CandidateError

__all__ = ["export_onnx", "nodes_by_module", "OPSET", "INPUT_NAME", "OUTPUT_NAME"]

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def export_onnx(model: nn.Module, example_input: torch.Tensor) -> onnx.ModelProto:
    """The model as ONNX (opset 17, dynamic batch axis), eval mode, BatchNorm folded into convs.

    Uses the TorchScript-based exporter: it is deterministic and an order of magnitude
    faster than the torch.export-based one for the small graphs searched here.
    """
    buf = io.BytesIO()
    model = model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example_input,), buf, dynamo=False, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types
        raise CandidateError(f"ONNX export failed: {type(e).__name__}: {e}") from e
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "autoprune"
    return proto


def _module_path(node_name: str) -> str | None:
    """``/layer1/layer1.0/conv1/Conv_2`` -> ``layer1.0.conv1`` (scopes are local or qualified names)."""
    parts = [p for p in node_name.split("/") if p][:-1]
    path = ""
    for p in parts:
        path = p if (not path or p.startswith(path + ".")) else f"{path}.{p}"
    return path or None


def nodes_by_module(proto: onnx.ModelProto) -> dict[str, list[str]]:
    """Weighted ONNX nodes (Conv, Gemm, MatMul) grouped by the module path that produced them."""
    out: dict[str, list[str]] = {}
    for node in proto.graph.node:
        if node.op_type in WEIGHTED_OPS:
            path = _module_path(node.name)
            if path is not None:
                out.setdefault(path, []).append(node.name)
    return out
