"""Latency measured in this process with onnxruntime, as the device profile says."""

from __future__ import annotations

import os
import platform
import resource

import numpy as np

from ..exceptions import ProfilerError
from ..metrics import Metric
from .base import Measurement, Profiler, estimate_energy
from .timing import make_inputs, make_session, runtime_info, time_session

__all__ = ["LocalProfiler", "host_info"]


def host_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), **runtime_info()}


class LocalProfiler(Profiler):
    """Times the model here, single-run wall times over ``repetitions`` after ``warmup`` runs."""

    def measure(self, model_path, inputs=None) -> Measurement:
        s = self.device.profiler
        try:
            session = make_session(str(model_path), threads=s.threads, provider=s.execution_provider)
            feeds = inputs if inputs is not None else make_inputs(session, s.batch_size)
            stats, _ = time_session(session, feeds, s.warmup, s.repetitions, s.min_duration_s)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ProfilerError(f"local profiling of {model_path} failed: {e}") from e
        settings = {
            "profiler": "local",
            "threads": s.threads,
            "warmup": s.warmup,
            "repetitions": s.repetitions,
            "min_duration_s": s.min_duration_s,
            "execution_provider": s.execution_provider,
            "batch_size": int(next(iter(feeds.values())).shape[0]) if feeds else s.batch_size,
        }
        latency = Metric(
            stats["median_ms"], "ms", "measured",
            f"median of {stats['n']} onnxruntime runs on {self.device.name} ({s.threads} thread(s))",
        )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return Measurement(
            latency_ms=latency,
            latency=stats,
            energy_mj=estimate_energy(stats["median_ms"], self.device),
            settings=settings,
            device={"name": self.device.name, "meter": "none (estimated from device profile power)", **host_info()},
            peak_memory_mb=peak_mb,
        )
