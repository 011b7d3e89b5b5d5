"""int8 QDQ quantization with onnxruntime, layer by layer as the plan says.

Weights are quantized per output channel (symmetric int8), activations per tensor (uint8)
with min-max ranges calibrated on the task's training data. Layers the plan keeps at 32
bits are excluded by node name and stay fp32 in the same graph.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from ..exceptions import CandidateError
from .onnx_export import INPUT_NAME

__all__ = ["quantize_int8"]


class _Reader(CalibrationDataReader):
    def __init__(self, X: np.ndarray, batch_size: int) -> None:
        self._batches = [X[i : i + batch_size] for i in range(0, len(X), batch_size)]
        self._it = iter(self._batches)

    def get_next(self):
        b = next(self._it, None)
        return None if b is None else {INPUT_NAME: b}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def quantize_int8(proto: onnx.ModelProto, quantize_nodes: list[str], exclude_nodes: list[str], calibration: np.ndarray) -> onnx.ModelProto:
    """Quantize ``quantize_nodes`` to int8 QDQ; ``exclude_nodes`` stay fp32.

    Args:
        proto: The fp32 model.
        quantize_nodes: Names of the weighted nodes to quantize.
        exclude_nodes: Names of weighted nodes to keep in fp32.
        calibration: Calibration inputs, ``(N, ...)`` float32.
    """
    if not quantize_nodes:
        return proto
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # ORT's preprocessing advice
    with tempfile.TemporaryDirectory(prefix="autoprune-q-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, src)
        try:
            quantize_static(
                str(src), str(dst), _Reader(calibration.astype(np.float32), 64),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=list(exclude_nodes),
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        except Exception as e:
            raise CandidateError(f"onnxruntime quantization failed: {type(e).__name__}: {e}") from e
        return onnx.load(dst)
