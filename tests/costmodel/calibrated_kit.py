"""A copy of local-cpu with short timing settings, for the studies that use its calibration."""

from __future__ import annotations

import dataclasses

from autoprune.device import load_device_profile


def local_cpu_copy(directory, name: str, calibration: str | None, threads: int = 1):
    """A copy of local-cpu with short timing settings (what a calibration checks is kept), written to ``directory``."""
    base = load_device_profile("local-cpu")
    fast = dataclasses.replace(base.profiler, warmup=5, repetitions=30, min_duration_s=0.05, threads=threads)
    path = directory / f"{name}.yaml"
    dataclasses.replace(base, profiler=fast, calibration=calibration).save(path)
    return path
