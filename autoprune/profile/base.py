"""The profiler interface: ``measure(model, inputs) -> Measurement``.

A profiler turns an ONNX file into latency (and energy) figures for one device. The local
profiler times it in this process, the agent profiler sends it to the device, and a
calibrated cost model (later) predicts the same :class:`Measurement` with
``source="modelled"``. Nothing here imports torch.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import os
from typing import Any, ClassVar

import numpy as np

from ..device import DeviceProfile, Limit
from ..metrics import Metric

__all__ = ["Profiler", "Measurement", "Forecast", "estimate_energy"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Latency (and energy) of one model on one device.

    Args:
        latency_ms: Median single-inference latency, with how it was obtained.
        latency: Full statistics: ``median_ms, p90_ms, min_ms, mean_ms, std_ms, cv, n`` (``min_ms``: the fastest run; absent from an older agent's).
        energy_mj: Energy per inference, or None when neither a meter nor a power figure exists.
        settings: The measurement settings used (threads, warm-up, repetitions, provider, ...).
        device: Facts about the device and runtime versions.
        peak_memory_mb: Peak resident memory during the measurement, when known.
        limits: The device's hard limits against what the model needs of them (a modelled
            microcontroller's flash and SRAM); the study makes a trial that exceeds one infeasible.
    """

    latency_ms: Metric
    latency: dict[str, float]
    energy_mj: Metric | None
    settings: dict[str, Any]
    device: dict[str, Any]
    peak_memory_mb: float | None = None
    limits: tuple[Limit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms.to_dict(),
            "latency": dict(self.latency),
            "energy_mj": self.energy_mj.to_dict() if self.energy_mj else None,
            "settings": dict(self.settings),
            "device": dict(self.device),
            "peak_memory_mb": self.peak_memory_mb,
            **({"limits": [lim.to_dict() for lim in self.limits]} if self.limits else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Measurement":
        return cls(
            latency_ms=Metric.from_dict(d["latency_ms"]),
            latency=dict(d["latency"]),
            energy_mj=Metric.from_dict(d["energy_mj"]) if d.get("energy_mj") else None,
            settings=dict(d.get("settings", {})),
            device=dict(d.get("device", {})),
            peak_memory_mb=d.get("peak_memory_mb"),
            limits=tuple(Limit(**lim) for lim in d.get("limits", ())),
        )


@dataclasses.dataclass(frozen=True)
class Forecast:
    """What a profiler will report for a model, known from its graph alone (:meth:`Profiler.forecast`).

    Args:
        measurement: The numbers, each ``modelled``.
        slack: The share by which the latency and energy it reports may come out lower than
            these: 0 when it reports exactly these; a hybrid study's margin when it may time
            the model instead.
    """

    measurement: Measurement
    slack: float = 0.0


class Profiler(abc.ABC):
    """Measures ONNX models on one device.

    Attributes:
        measures_time: Its latencies are timed, so timing the same model again can give
            another number and the confirmation pass re-measures the front
            (:mod:`autoprune.study.confirm`). A cost model that computes its numbers
            (``source="modelled"``) sets it False: the pass skips it without building anything.
        forecasts: :meth:`forecast` can say from a model's graph what :meth:`measure` will
            report for it, so a study screens plans against its budgets before training them
            (:mod:`autoprune.study.screen`).

    Args:
        device: The device profile whose ``profiler`` settings are used.
    """

    measures_time: ClassVar[bool] = True
    forecasts: ClassVar[bool] = False

    def __init__(self, device: DeviceProfile) -> None:
        self.device = device

    @abc.abstractmethod
    def measure(self, model_path: str | os.PathLike, inputs: dict[str, np.ndarray] | None = None) -> Measurement:
        """Measure one model. ``inputs`` default to deterministic random data of the declared shapes.

        Raises:
            ProfilerError: the measurement could not be taken.
        """

    def forecast(self, model_path: str | os.PathLike) -> Forecast | None:
        """What :meth:`measure` will report for any model with ``model_path``'s graph, whatever its weights.

        None (the default, and a profiler that times): it cannot be known without measuring.

        Raises:
            ProfilerError: the file is not a model this profiler can read.
        """
        return None

    def with_settings(self, **changes: Any) -> "Profiler":
        """A profiler like this one with some ``profiler`` settings changed (e.g. ``min_duration_s``).

        The copy shares this profiler's sessions, connections and caches, and this profiler is
        left as it was, so one profiler can serve callers that need different settings at once.
        Close the original, not the copy.

        Raises:
            TypeError: a name that is not a profiler setting.
        """
        other = copy.copy(self)
        other.device = dataclasses.replace(self.device, profiler=dataclasses.replace(self.device.profiler, **changes))
        return other

    def close(self) -> None:
        """Release sessions or connections. Safe to call twice."""

    def __enter__(self) -> "Profiler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def estimate_energy(latency_ms: float, device: DeviceProfile) -> Metric | None:
    """Energy per inference from the device profile's power figure: watts × latency."""
    if device.power_watts is None:
        return None
    return Metric(
        value=device.power_watts * latency_ms,  # W x ms = mJ
        unit="mJ",
        source="estimated",
        how=f"{device.power_watts:g} W (device profile: {device.power_source or 'no source given'}) x measured median latency",
    )
