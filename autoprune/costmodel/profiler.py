"""The modelled profiler: a :class:`~autoprune.profile.base.Profiler` that computes instead of timing.

Registered as profiler kinds ``bitserial`` and ``mcu``: the device profile's ``target:``
section (:mod:`.targets`) holds the model's parameters and their sources. ``measure`` reads
the artifact's graph (:func:`.graph.analyze`, with the planned bits of int8 stand-in layers)
and returns latency and energy labelled ``modelled``, ``how`` naming the model and the
sources, plus the device's hard limits (flash, SRAM) against what the graph needs.
Nothing is run, so the numbers do not depend on this machine or its load.
"""

from __future__ import annotations

import os

import numpy as np
import onnx

from ..device import DeviceProfile
from ..exceptions import ConfigError, ProfilerError
from ..metrics import Metric
from ..profile.base import Forecast, Measurement, Profiler
from .graph import analyze

__all__ = ["ModelledProfiler"]


class ModelledProfiler(Profiler):
    """Latency and energy from the device profile's target model, computed over the artifact's graph.

    Args:
        device: A device profile with a ``target:`` section (``profiler.kind`` ``bitserial`` or ``mcu``).

    Raises:
        ConfigError: the profile has no target section for its kind.
    """

    measures_time = False  # computed, not timed: the same graph always gives the same numbers
    forecasts = True

    def __init__(self, device: DeviceProfile) -> None:
        target = device.target
        if target is None or getattr(target, "KIND", None) != device.profiler.kind:
            raise ConfigError(f"{device.path or device.name}: profiler.kind {device.profiler.kind!r} needs a target: section "
                              "with the model's parameters (see device_profiles/bitserial-sim.yaml, cortex-m7.yaml)")
        super().__init__(device)

    def forecast(self, model_path: str | os.PathLike) -> Forecast:
        """Exactly what :meth:`measure` reports: shapes, bits and constants' sizes, never their values."""
        return Forecast(self.measure(model_path))

    def measure(self, model_path: str | os.PathLike, inputs: dict[str, np.ndarray] | None = None) -> Measurement:
        """Model one artifact; ``inputs``, when given, fix the input shapes (their values are not used).

        Raises:
            ProfilerError: the file is not a readable ONNX model or its shapes cannot be inferred.
        """
        s = self.device.profiler
        shapes = {name: tuple(a.shape) for name, a in (inputs or {}).items()}
        try:
            graph = analyze(onnx.load(str(model_path)), batch_size=s.batch_size, input_shapes=shapes)
        except Exception as e:  # onnx raises its own types (DecodeError, InferenceError)
            raise ProfilerError(f"modelling {model_path} on {self.device.name} failed: {type(e).__name__}: {e}") from e
        est = self.device.target.estimate(graph)
        v = est.latency_ms
        return Measurement(
            latency_ms=Metric(v, "ms", "modelled", est.latency_how),
            # A model has no run-to-run spread: one value, n = 1.
            latency={"median_ms": v, "p90_ms": v, "min_ms": v, "mean_ms": v, "std_ms": 0.0, "cv": 0.0, "n": 1},
            energy_mj=Metric(est.energy_mj, "mJ", "modelled", est.energy_how),
            settings={"profiler": s.kind, "batch_size": graph.batch_size},
            device={
                "name": self.device.name,
                "target": self.device.target.to_dict(),
                "graph": {
                    "macs": graph.macs,
                    "weight_bytes_by_bits": {str(b): n for b, n in graph.weight_bytes_by_bits.items()},
                    "other_constant_bytes": graph.other_constant_bytes,
                    "peak_activation_bytes": graph.peak_activation_bytes,
                    "peak_node": graph.peak_node,
                },
                "model": est.detail,
            },
            limits=est.limits,
        )
