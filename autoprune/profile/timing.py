"""Timing an ONNX model with onnxruntime. Imports only numpy and onnxruntime.

Shared by the local profiler and the on-device agent, so both measure the same way:
warm-up runs, then timed runs until both ``repetitions`` and ``min_duration_s`` are
reached; the statistics are over single-run wall times (``time.perf_counter``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["make_session", "make_inputs", "time_session", "latency_stats", "ORT_DTYPES"]

# onnxruntime input types and the numpy dtype that feeds them (shared with the agent).
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def make_session(model: str | bytes, threads: int = 1, provider: str = "CPUExecutionProvider") -> ort.InferenceSession:
    """An inference session pinned to ``threads`` intra-op threads and one inter-op thread."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=[provider])


def make_inputs(session: ort.InferenceSession, batch_size: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs shaped as the model declares; symbolic dims become ``batch_size``.

    Raises:
        ValueError: an input has a dtype numpy cannot make.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        if inp.type not in ORT_DTYPES:
            raise ValueError(f"input {inp.name!r} has unsupported type {inp.type}")
        shape = [d if isinstance(d, int) and d > 0 else batch_size for d in inp.shape]
        dtype = ORT_DTYPES[inp.type]
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[inp.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            feeds[inp.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def latency_stats(times_s: np.ndarray) -> dict[str, float]:
    """Median, p90, fastest, mean, std (ms), coefficient of variation and count of single-run times."""
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
        "mean_ms": mean,
        "std_ms": std,
        "cv": std / mean if mean > 0 else 0.0,
        "n": int(len(ms)),
    }


def time_session(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    warmup: int,
    repetitions: int,
    min_duration_s: float = 0.0,
    max_duration_s: float | None = None,
) -> tuple[dict[str, float], float]:
    """Time ``session.run`` on ``feeds``; returns ``(latency_stats, wall_seconds_of_timed_runs)``."""
    for _ in range(warmup):
        session.run(None, feeds)
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        session.run(None, feeds)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if len(times) >= repetitions and elapsed >= min_duration_s:
            break
        if max_duration_s is not None and elapsed >= max_duration_s:
            break
    return latency_stats(np.array(times)), time.perf_counter() - start


def runtime_info() -> dict[str, Any]:
    return {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
