"""Device profilers: measure (or model) the latency and energy of an ONNX artifact.

``make_profiler(device)`` builds the implementation ``device.profiler.kind`` names in
:data:`PROFILERS` (``local``, ``agent``, the modelled ``bitserial`` and ``mcu`` of
:mod:`autoprune.costmodel`, or a ``module.path:factory`` of one's own, called
with the device profile); an unknown kind lists the known ones. Register one under a name
with ``autoprune.profile.PROFILERS.register("mine", MyProfiler)``.
"""

from __future__ import annotations

from ..device import PROFILERS, DeviceProfile
from ..exceptions import ConfigError
from .base import Forecast, Measurement, Profiler, estimate_energy
from .local import LocalProfiler

__all__ = ["Profiler", "Measurement", "Forecast", "LocalProfiler", "make_profiler", "PROFILERS", "estimate_energy"]


def make_profiler(device: DeviceProfile | Profiler) -> Profiler:
    """The profiler for ``device`` (a :class:`Profiler` passes through unchanged).

    Raises:
        ConfigError: ``profiler.kind`` names no registered profiler (the message names the
            device profile and lists the known kinds), or its factory cannot be imported.
    """
    if isinstance(device, Profiler):
        return device
    try:
        return PROFILERS.create(device.profiler.kind, device)
    except ConfigError as e:
        raise ConfigError(f"{device.path or device.name}: {e}") from None
