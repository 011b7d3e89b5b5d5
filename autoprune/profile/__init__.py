"""Device profilers: measure (or, later, model) the latency and energy of an ONNX artifact.

``make_profiler(device)`` picks the implementation from ``device.profiler.kind`` through
one registry; an unknown kind lists the known ones.
"""

from __future__ import annotations

from typing import Callable

from ..device import DeviceProfile
from ..exceptions import ConfigError
from .base import Measurement, Profiler, estimate_energy
from .local import LocalProfiler

__all__ = ["Profiler", "Measurement", "LocalProfiler", "make_profiler", "register_profiler", "PROFILERS", "estimate_energy"]

PROFILERS: dict[str, Callable[[DeviceProfile], Profiler]] = {"local": LocalProfiler}


def register_profiler(kind: str, factory: Callable[[DeviceProfile], Profiler]) -> None:
    PROFILERS[kind] = factory


def make_profiler(device: DeviceProfile | Profiler) -> Profiler:
    """The profiler for ``device`` (a :class:`Profiler` passes through unchanged)."""
    if isinstance(device, Profiler):
        return device
    kind = device.profiler.kind
    if kind == "agent" and "agent" not in PROFILERS:
        from . import agent  # noqa: F401  registers itself
    if kind not in PROFILERS:
        raise ConfigError(f"{device.path or device.name}: profiler.kind {kind!r} is unknown (known: {sorted(PROFILERS)})")
    return PROFILERS[kind](device)
