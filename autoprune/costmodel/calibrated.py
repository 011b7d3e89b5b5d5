"""The calibrated profiler: a device's latency predicted from the kernels its runtime would run.

:class:`CalibratedProfiler` is a :class:`~autoprune.profile.base.Profiler` whose numbers are
``modelled``: it reads the artifact's kernels as the device's runtime executes them
(:mod:`.kernels`) and prices them with the device's calibration (:mod:`.calibration`,
written by ``autoprune calibrate``). Nothing is timed, so a prediction costs two
onnxruntime session set-ups (tens of milliseconds) whatever the device, and the same
artifact always gets the same number. Energy, labelled ``modelled``: with the profile's
``power.model``, the core's power over the modelled latency plus per-op and per-byte costs of
the predicted kernels (:mod:`.energy`); with only a power figure, that power times the latency.

A study uses it in ``search.mode: model`` (every latency modelled) and ``hybrid``
(:mod:`autoprune.study.hybrid`: the prediction decides which trials the device measures).
"""

from __future__ import annotations

import os

import numpy as np

from ..device import DeviceProfile
from ..exceptions import ProfilerError
from ..metrics import Metric
from ..profile.base import Forecast, Measurement, Profiler
from .calibrate import device_facts, kernels_of
from .calibration import Calibration, CalibrationError, Prediction, load_calibration

__all__ = ["CalibratedProfiler", "load_device_calibration"]


def load_device_calibration(device: DeviceProfile) -> Calibration:
    """The calibration ``device``'s profile names, checked against this device.

    Raises:
        CalibrationError: the profile names none, or the file is missing, corrupt, of
            another version, or measured on another device (CPU, runtime, settings).
    """
    path = device.calibration_path()
    if path is None:
        raise CalibrationError(f"{device.path or device.name}: no calibration: key; run "
                               f"`autoprune calibrate --device {device.path or device.name}` first")
    return load_calibration(path, expect=device_facts(device))


class CalibratedProfiler(Profiler):
    """Latency (and energy) of an artifact predicted by ``device``'s calibrated cost model.

    Args:
        device: The device profile (its ``calibration:`` file is loaded unless one is given).
        calibration: A calibration to use instead of the profile's.
    """

    measures_time = False  # predicted: the same artifact always gets the same number
    forecasts = True  # the prediction reads the graph, never the weights

    def __init__(self, device: DeviceProfile, calibration: Calibration | None = None) -> None:
        super().__init__(device)
        self.calibration = calibration or load_device_calibration(device)

    def predict(self, model_path: str | os.PathLike) -> Prediction:
        """The prediction behind :meth:`measure` (with why it may not be trusted).

        Raises:
            ProfilerError: the file is not a model onnxruntime can load.
        """
        try:
            kernels = kernels_of(model_path, self.device, self.calibration.level)
        except Exception as e:  # onnxruntime raises its own types
            raise ProfilerError(f"predicting {model_path} on {self.device.name} failed: {type(e).__name__}: {e}") from e
        return self.calibration.predict(kernels)

    def measure(self, model_path: str | os.PathLike, inputs: dict[str, np.ndarray] | None = None) -> Measurement:
        return self.to_measurement(self.predict(model_path))

    def forecast(self, model_path: str | os.PathLike) -> Forecast:
        """Exactly what :meth:`measure` reports: the kernels it prices depend on the graph, not the weights."""
        return Forecast(self.measure(model_path))

    def to_measurement(self, p: Prediction, factor: float = 1.0, factor_how: str = "") -> Measurement:
        """A :class:`Measurement` of prediction ``p`` (times ``factor``, a study's own correction, said in ``factor_how``).

        Energy: the profile's ``power.model`` (:mod:`.energy`: core power over this latency plus
        per-op and per-byte costs of the predicted kernels), else its watts x this latency.
        """
        v = p.latency_ms * factor
        how = f"predicted by the {self.calibration.describe()}"
        if factor != 1.0:
            how += f", x{factor:.3f} ({factor_how})"
        if not p.confident:
            how += f"; low confidence: {'; '.join(p.reasons)}"
        energy = None
        if self.device.energy_model is not None and p.kernels:
            e = self.device.energy_model.estimate(v, p.kernels)
            energy = Metric(e.energy_mj, "mJ", "modelled", e.how)
        elif self.device.power_watts is not None:
            energy = Metric(self.device.power_watts * v, "mJ", "modelled",
                            f"{self.device.power_watts:g} W (device profile: {self.device.power_source or 'no source given'}) "
                            "x the modelled latency")
        top = sorted(((k, ms) for k, ms in p.by_kind.items()), key=lambda kv: -kv[1])[:8]
        return Measurement(
            latency_ms=Metric(v, "ms", "modelled", how),
            latency={"median_ms": v, "p90_ms": v, "min_ms": v, "mean_ms": v, "std_ms": 0.0, "cv": 0.0, "n": 1},
            energy_mj=energy,
            settings={"profiler": "calibrated", "batch_size": self.device.profiler.batch_size},
            device={
                "name": self.device.name,
                "calibration": {"file": str(self.device.calibration_path() or ""), "created": self.calibration.created,
                                "method": self.calibration.method, "heldout": dict(self.calibration.heldout)},
                "prediction": {"latency_ms": p.latency_ms, "confident": p.confident, "reasons": list(p.reasons),
                               "by_kind_ms": {k: round(ms, 6) for k, ms in top}},
            },
        )
