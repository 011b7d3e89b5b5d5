"""Which meter to use here: the first readable one in a provider-dependent order."""

from __future__ import annotations

import dataclasses
from typing import Callable

from .base import EnergyMeter, MeterUnavailable
from .estimate import EstimateMeter
from .hwmon import DEFAULT_HWMON_ROOT, HwmonMeter
from .nvml import NvmlMeter
from .rapl import DEFAULT_POWERCAP_ROOT, RaplMeter

__all__ = ["METERS", "register_meter", "make_meter", "detect_meter", "Detection", "meter_order"]

# name -> factory(roots); ``roots`` maps "powercap"/"hwmon" to sysfs directories.
METERS: dict[str, Callable[[dict[str, str]], EnergyMeter]] = {
    "rapl": lambda roots: RaplMeter(roots.get("powercap", DEFAULT_POWERCAP_ROOT)),
    "nvml": lambda roots: NvmlMeter(),
    "hwmon": lambda roots: HwmonMeter(roots.get("hwmon", DEFAULT_HWMON_ROOT)),
}

_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def register_meter(name: str, factory: Callable[[dict[str, str]], EnergyMeter]) -> None:
    """Add a meter kind; ``factory(roots)`` builds it."""
    METERS[name] = factory


def make_meter(name: str, roots: dict[str, str] | None = None) -> EnergyMeter:
    """The meter registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in METERS:
        raise ValueError(f"unknown energy meter {name!r} (known: {sorted(METERS)})")
    return METERS[name](roots or {})


def meter_order(provider: str) -> tuple[str, ...]:
    """Meters that see the energy of work on ``provider``, best first.

    GPU work is metered by NVML (the GPU board) before board rails; CPU work by RAPL
    (the package) before board rails. NVML is never used for CPU work: it does not see it.
    """
    if provider in _GPU_PROVIDERS:
        return ("nvml", "hwmon", "rapl")
    return ("rapl", "hwmon")


@dataclasses.dataclass(frozen=True)
class Detection:
    """The chosen meter (None when none is readable) and why each other candidate was not."""

    meter: EnergyMeter | None
    reasons: dict[str, str]

    def describe(self) -> dict:
        return {
            "meter": self.meter.describe() if self.meter else None,
            "unavailable": dict(self.reasons),
        }


def detect_meter(
    provider: str = "CPUExecutionProvider",
    roots: dict[str, str] | None = None,
    order: tuple[str, ...] | None = None,
    fallback: EstimateMeter | None = None,
) -> Detection:
    """Probe meters in ``order`` (default :func:`meter_order`) and keep the first readable one.

    Args:
        provider: onnxruntime execution provider the work runs on.
        roots: sysfs directories, ``{"powercap": ..., "hwmon": ...}``; tests use fake trees.
        order: Meter names to try; unknown names are reported, not raised.
        fallback: Used when no meter is readable, if it can give a figure (it is labelled
            ``estimated``).
    """
    reasons: dict[str, str] = {}
    for name in order if order is not None else meter_order(provider):
        if name not in METERS:
            reasons[name] = f"unknown meter (known: {sorted(METERS)})"
            continue
        meter = METERS[name](roots or {})
        try:
            meter.probe()
        except MeterUnavailable as e:
            reasons[name] = str(e)
            continue
        return Detection(meter, reasons)
    if fallback is not None:
        try:
            fallback.probe()
            return Detection(fallback, reasons)
        except MeterUnavailable as e:
            reasons[fallback.name] = str(e)
    return Detection(None, reasons)
