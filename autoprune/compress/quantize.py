"""int8 QDQ quantization with onnxruntime, layer by layer as the plan says.

Weights are quantized per output channel (symmetric int8), activations per tensor (uint8)
with ranges calibrated on the task's training data, by min-max or by percentile
(:class:`Calibration`). :func:`quantize_onnx` applies a plan's bit-widths: it finds each
planned layer's nodes through the map :func:`~autoprune.compress.onnx_export.export_onnx`
recorded (from the weights, not node names); the nodes of layers the plan keeps at 32 bits
are excluded by name and stay fp32 in the same graph, and a layer planned at 8 or 16 bits
whose nodes cannot be found is an error, never a silently fp32 layer.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from .._scoped import discard_stdout, quiet_root_logger
from ..exceptions import CandidateError, ConfigError, PlanError
from ..plan import Plan
from ..space import SearchSpace
from . import external
from .fp16 import convert_fp16
from ..inputs import Data, count, feeds, take
from .onnx_export import WEIGHTED_OPS, take_layer_nodes
from .settings import CALIBRATION_METHODS

__all__ = ["quantize_onnx", "check_runnable", "quantize_int8", "input_dtypes", "Calibration", "CALIBRATION_METHODS"]

@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration inputs and how activation ranges are found from them.

    Args:
        data: Calibration inputs, ``(N, ...)``, or a dict of them keyed by the model's input names.
        method: ``"minmax"`` (the observed range) or ``"percentile"`` (onnxruntime's
            histogram percentile: ``(100 - percentile) / 2`` % of the values cut at each end,
            never past the observed min/max).
        percentile: The share of values kept inside the range, for ``percentile``.
    """

    data: Data
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
    """Calibration batches as onnxruntime feeds, each input cast to the graph's dtype for it."""

    def __init__(self, data: Data, dtypes: dict[str, np.dtype], batch_size: int) -> None:
        self._batches = [feeds(take(data, slice(i, i + batch_size)), dtypes, "calibration data") for i in range(0, count(data), batch_size)]
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def input_dtypes(proto: onnx.ModelProto) -> dict[str, np.dtype]:
    """The numpy dtype of each graph input: float32 for images and features, int64 for token ids and masks.

    Calibration batches are cast to them, so the task's data reaches onnxruntime as the
    exported model takes it (float64 arrays as float32, token ids as int64), never as float.
    """
    return {i.name: np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in proto.graph.input}


def quantize_int8(proto: onnx.ModelProto, quantize_nodes: list[str], exclude_nodes: list[str], calibration: Data | Calibration) -> onnx.ModelProto:
    """Quantize ``quantize_nodes`` to int8 QDQ; ``exclude_nodes`` stay fp32.

    Args:
        proto: The fp32 model.
        quantize_nodes: Names of the weighted nodes to quantize.
        exclude_nodes: Names of weighted nodes to keep in fp32.
        calibration: Calibration inputs, ``(N, ...)`` or a dict of them keyed by the graph's
            input names (min-max ranges), or a :class:`Calibration` saying how to find the
            ranges; each input is cast to the graph's dtype for it (:func:`input_dtypes`).

    Raises:
        ConfigError: the calibration data lacks one of the graph's inputs.
        CandidateError: onnxruntime's quantizer failed.
    """
    if not quantize_nodes:
        return proto
    if not isinstance(calibration, Calibration):
        calibration = Calibration(calibration if isinstance(calibration, Mapping) else np.asarray(calibration))
    method, extra_options = calibration.ort_options()
    reader = _Reader(calibration.data, input_dtypes(proto), 64)  # raises ConfigError for data that does not fit
    large = external.is_large(external.weight_bytes(proto))  # over protobuf's limit: files with external data
    with tempfile.TemporaryDirectory(prefix="autoprune-q-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        external.save_onnx(proto, src)
        try:
            # The quantizer logs its preprocessing advice through the root logger, and the
            # histogram calibrators print their progress.
            with quiet_root_logger(), discard_stdout():
                quantize_static(
                    str(src), str(dst), reader,
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=method,
                    nodes_to_exclude=list(exclude_nodes),
                    extra_options=extra_options,
                    use_external_data_format=large,
                )
        except Exception as e:
            raise CandidateError(f"onnxruntime quantization failed: {type(e).__name__}: {e}") from e
        return onnx.load(dst)  # with its external data, read from beside it


def check_runnable(bits: dict[str, int]) -> dict[str, int]:
    """``bits`` (``{layer: bit-width}``) if onnxruntime runs every one of them (8, 16, 32).

    Raises:
        PlanError: a layer is planned below 8 bits (the message names it).
    """
    low = sorted(layer for layer, b in bits.items() if b not in (8, 16, 32))
    if low:
        raise PlanError(
            f"plan: layers.{low[0]}.bits {bits[low[0]]} has no onnxruntime kernel; bit-widths below 8 are "
            "simulated in torch (autoprune.compress.simulate), not exported"
        )
    return bits


def quantize_onnx(proto: onnx.ModelProto, plan: Plan, space: SearchSpace,
                  calibration: Data | Calibration | None) -> onnx.ModelProto:
    """Apply the plan's bit-widths to a graph from :func:`~autoprune.compress.onnx_export.export_onnx`:
    int8 QDQ where bits == 8, float16 where 16, fp32 where 32.

    Returns a new graph (without the export's layer map); ``proto`` is left as it is.
    Bit-widths below 8 have no onnxruntime kernels; they are simulated in torch
    (:mod:`autoprune.compress.simulate`) and refused here.

    Raises:
        PlanError: a layer is planned below 8 bits, or the plan does not fit the space.
        CandidateError: a layer planned at 8 or 16 bits computes in no node of the graph
            (the message names it), or onnxruntime's quantizer failed.
        ValueError: layers at 8 bits and no calibration inputs.
    """
    bits = check_runnable(space.resolve_bits(plan))
    nodes, proto = take_layer_nodes(proto)
    lost = [layer for layer, b in bits.items() if b != 32 and not nodes.get(layer)]
    if lost:
        raise CandidateError(
            f"layer {lost[0]} is planned at {bits[lost[0]]} bits but no Conv/Gemm/MatMul node of the exported graph "
            f"computes with its weight, so it cannot be quantized (layers not found: {', '.join(lost)})"
        )
    want8 = [n for layer, b in bits.items() if b == 8 for n in nodes[layer]]
    want16 = [n for layer, b in bits.items() if b == 16 for n in nodes[layer]]
    # every other weighted node stays fp32: layers planned 16 or 32, layers outside the plan
    # (excluded from the space), and nodes computing with no layer's weight (attention scores)
    quantized = set(want8)
    others = [n.name for n in proto.graph.node if n.op_type in WEIGHTED_OPS and n.name not in quantized]
    if want8 and calibration is None:
        raise ValueError("calibration data is required to quantize layers to 8 bits")
    if want8:
        proto = quantize_int8(proto, want8, others, calibration)
    return convert_fp16(proto, want16) if want16 else proto
