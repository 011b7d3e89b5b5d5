"""Which meter to use here: the first readable one in a provider-dependent order.

Meters are named in :data:`METERS`: ``factory(roots) -> EnergyMeter``, where ``roots`` maps
``"powercap"``/``"hwmon"`` to sysfs directories. A meter of one's own is a
``module.path:factory`` reference wherever a meter name goes (``autoprune agent serve
--meters``, ``LocalProfiler(meter_order=...)``), or registered under a name with
``autoprune.meters.METERS.register("usb", make_usb_meter)``.
"""

from __future__ import annotations

import dataclasses

from ..exceptions import ConfigError
from ..registry import Registry
from .base import EnergyMeter, MeterUnavailable
from .estimate import EstimateMeter
from .hwmon import DEFAULT_HWMON_ROOT, HwmonMeter
from .nvml import NvmlMeter
from .rapl import DEFAULT_POWERCAP_ROOT, RaplMeter

__all__ = ["METERS", "make_meter", "detect_meter", "Detection", "meter_order"]

METERS = Registry("meter", "energy meter", returns=EnergyMeter)
METERS.register("rapl", lambda roots: RaplMeter(roots.get("powercap", DEFAULT_POWERCAP_ROOT)))
METERS.register("nvml", lambda roots: NvmlMeter())
METERS.register("hwmon", lambda roots: HwmonMeter(roots.get("hwmon", DEFAULT_HWMON_ROOT)))

_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def make_meter(name: str, roots: dict[str, str] | None = None) -> EnergyMeter:
    """The meter ``name`` names in :data:`METERS` (or a ``module.path:factory`` reference).

    Raises:
        ConfigError: unknown name (the message lists the known ones), a reference that
            cannot be imported, or a factory that made no :class:`EnergyMeter`.
    """
    return METERS.create(name, roots or {})


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
        order: Meter names (or ``module.path:factory`` references) to try; unknown or
            unimportable ones are reported, not raised.
        fallback: Used when no meter is readable, if it can give a figure (it is labelled
            ``estimated``).
    """
    reasons: dict[str, str] = {}
    for name in order if order is not None else meter_order(provider):
        try:
            meter = make_meter(name, roots)
        except ConfigError as e:
            reasons[name] = str(e)
            continue
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
