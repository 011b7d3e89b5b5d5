"""Latency (and energy, when this machine has a meter) measured in this process with onnxruntime."""

from __future__ import annotations

import functools
import os
import platform
import resource
from pathlib import Path

from ..device import DeviceProfile
from ..exceptions import ProfilerError
from ..meters.detect import Detection, detect_meter
from ..metrics import Metric
from .base import Measurement, Profiler, estimate_energy
from .timing import make_inputs, make_session, runtime_info

__all__ = ["LocalProfiler", "host_info", "vector_isa"]

_NO_METER = "none (estimated from device profile power)"


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def host_info() -> dict:
    """This machine as a local measurement records it: CPU model and vector extension, cores, OS, runtime."""
    cpu = platform.processor() or platform.machine()
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "vector_isa": _this_vector_isa(), "cores": os.cpu_count(), "platform": platform.platform(),
            **runtime_info()}


@functools.cache
def _this_vector_isa() -> str:
    return vector_isa()  # read once: host_info() is called for every measurement


def vector_isa(cpuinfo: str | None = None) -> str:
    """The widest SIMD extension this CPU has that onnxruntime's kernels block by: ``avx512``, ``avx2``,
    ``avx``, ``neon`` or ``sse`` (from ``/proc/cpuinfo``, or ``cpuinfo``), else the machine name.

    A VM's CPU model string can be the same for CPUs with different vector widths ("AMD EPYC"),
    and onnxruntime lays fp32 convolutions out in blocks of that width: a cost model fitted on one
    mispredicts the other, so a calibration records it (``costmodel.calibrate.device_facts``).
    """
    if cpuinfo is None:
        cpuinfo = _cpuinfo()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    for isa, marks in (("avx512", {"avx512f"}), ("avx2", {"avx2"}), ("avx", {"avx"}), ("neon", {"asimd", "neon"}), ("sse", {"sse2"})):
        if flags & marks:
            return isa
    return platform.machine() or "unknown"


class LocalProfiler(Profiler):
    """Times the model here, single-run wall times over ``repetitions`` after ``warmup`` runs.

    When an energy meter is readable here (RAPL, hwmon rails; NVML for GPU providers), the
    timed runs last at least the meter's window (1 s) and energy per inference is the
    window's reading divided by the runs in it (``source="measured"``). Otherwise energy is
    the device profile's power figure times the median latency (``source="estimated"``).

    Args:
        device: The device profile whose ``profiler`` settings (and power figure) are used.
        meter_roots: sysfs directories, ``{"powercap": ..., "hwmon": ...}``, as the agent's
            ``--powercap-root``/``--hwmon-root``; tests point them at fake trees.
        meter_order: Meter names to try, overriding the per-provider default; ``()`` uses none.
    """

    def __init__(self, device: DeviceProfile, meter_roots: dict[str, str] | None = None,
                 meter_order: tuple[str, ...] | None = None) -> None:
        super().__init__(device)
        self.meter_roots = dict(meter_roots or {})
        self.meter_order = meter_order
        self._detection: Detection | None = None

    def detection(self) -> Detection:
        """The meter for this profile's execution provider, probed once (None and why, if none)."""
        if self._detection is None:
            self._detection = detect_meter(self.device.profiler.execution_provider, self.meter_roots, self.meter_order)
        return self._detection

    def measure(self, model_path, inputs=None) -> Measurement:
        # Imported here: meters.window imports profile.timing, so a module-level import would be circular.
        from ..meters.window import timed_window

        s = self.device.profiler
        meter = self.detection().meter
        try:
            session = make_session(str(model_path), threads=s.threads, provider=s.execution_provider)
            feeds = inputs if inputs is not None else make_inputs(session, s.batch_size)
            stats, reading, reason = timed_window(session, feeds, s.warmup, s.repetitions, s.min_duration_s, meter)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ProfilerError(f"local profiling of {model_path} failed: {e}") from e
        settings = {
            "profiler": "local",
            "threads": s.threads,
            "warmup": s.warmup,
            "repetitions": s.repetitions,
            "min_duration_s": max(s.min_duration_s, meter.min_window_s) if reading is not None else s.min_duration_s,
            "execution_provider": s.execution_provider,
            "batch_size": int(next(iter(feeds.values())).shape[0]) if feeds else s.batch_size,
        }
        latency = Metric(
            stats["median_ms"], "ms", "measured",
            f"median of {stats['n']} onnxruntime runs on {self.device.name} ({s.threads} thread(s))",
        )
        if reading is not None:
            energy = reading.to_metric()
            meter_info = {"meter": reading.meter, "energy_detail": reading.to_dict()}
        else:
            energy = estimate_energy(stats["median_ms"], self.device)
            why = reason if meter is not None else "; ".join(self.detection().reasons.values()) or "no energy meter found"
            meter_info = {"meter": _NO_METER, "energy_detail": {"meter": None, "reason": why}}
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return Measurement(
            latency_ms=latency,
            latency=stats,
            energy_mj=energy,
            settings=settings,
            device={"name": self.device.name, **meter_info, **host_info()},
            peak_memory_mb=peak_mb,
        )
