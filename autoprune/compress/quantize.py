"""int8 QDQ quantization with onnxruntime, layer by layer as the plan says.

Weights are quantized per output channel (symmetric int8), activations per tensor (uint8)
with ranges calibrated on the task's training data, by min-max or by percentile
(:class:`Calibration`). Layers the plan keeps at 32 bits are excluded by node name and stay
fp32 in the same graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from ..exceptions import CandidateError, ConfigError
from .onnx_export import INPUT_NAME

__all__ = ["quantize_int8", "Calibration", "CALIBRATION_METHODS"]

CALIBRATION_METHODS = ("minmax", "percentile")


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration inputs and how activation ranges are found from them.

    Args:
        data: Calibration inputs, ``(N, ...)``.
        method: ``"minmax"`` (the observed range) or ``"percentile"`` (onnxruntime's
            histogram percentile: ``(100 - percentile) / 2`` % of the values cut at each end,
            never past the observed min/max).
        percentile: The share of values kept inside the range, for ``percentile``.
    """

    data: np.ndarray
    method: str = "minmax"
    percentile: float = 99.99

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration: method must be one of {list(CALIBRATION_METHODS)}, got {self.method!r}")
        if not 50.0 <= self.percentile <= 100.0:
            raise ConfigError(f"calibration: percentile must be in [50, 100], got {self.percentile!r}")

    def ort_options(self) -> tuple[CalibrationMethod, dict]:
        """onnxruntime's calibration method and the ``extra_options`` that go with it."""
        extra = {"CalibTensorRangeSymmetric": False}
        if self.method == "minmax":
            return CalibrationMethod.MinMax, extra
        return CalibrationMethod.Percentile, {**extra, "CalibPercentile": float(self.percentile)}


class _Reader(CalibrationDataReader):
    def __init__(self, X: np.ndarray, batch_size: int) -> None:
        self._batches = [X[i : i + batch_size] for i in range(0, len(X), batch_size)]
        self._it = iter(self._batches)

    def get_next(self):
        b = next(self._it, None)
        return None if b is None else {INPUT_NAME: b}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def quantize_int8(proto: onnx.ModelProto, quantize_nodes: list[str], exclude_nodes: list[str], calibration: np.ndarray | Calibration) -> onnx.ModelProto:
    """Quantize ``quantize_nodes`` to int8 QDQ; ``exclude_nodes`` stay fp32.

    Args:
        proto: The fp32 model.
        quantize_nodes: Names of the weighted nodes to quantize.
        exclude_nodes: Names of weighted nodes to keep in fp32.
        calibration: Calibration inputs, ``(N, ...)`` float32 (min-max ranges), or a
            :class:`Calibration` saying how to find the ranges.
    """
    if not quantize_nodes:
        return proto
    if not isinstance(calibration, Calibration):
        calibration = Calibration(np.asarray(calibration))
    method, extra_options = calibration.ort_options()
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # ORT's preprocessing advice
    with tempfile.TemporaryDirectory(prefix="autoprune-q-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, src)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
                quantize_static(
                    str(src), str(dst), _Reader(calibration.data.astype(np.float32), 64),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=method,
                    nodes_to_exclude=list(exclude_nodes),
                    extra_options=extra_options,
                )
        except Exception as e:
            raise CandidateError(f"onnxruntime quantization failed: {type(e).__name__}: {e}") from e
        return onnx.load(dst)
