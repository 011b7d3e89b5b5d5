"""Taking one measurement on the agent: parse, build (or reuse) the session, time, meter, report.

Called with the measurement slot held, so session creation does not disturb another
model's timing either. A session cached from an earlier request for the same model,
threads and provider is reused; warm-up runs still precede every timed window. The request's time limit is enforced inside onnxruntime through
``RunOptions.terminate``, so even a single very slow inference is stopped.
"""

from __future__ import annotations

import resource
import threading
import time
from typing import Any

import onnxruntime as ort

from ..meters import EnergyMeter, timed_window
from ..profile.timing import make_session
from .errors import ApiError
from .request import ProfileRequest, make_feeds
from .store import SessionCache

__all__ = ["run_measurement"]


class _Expired(Exception):
    pass


class _DeadlineSession:
    """``session.run`` that stops (even mid-inference) once ``deadline`` (monotonic) passes."""

    def __init__(self, session: ort.InferenceSession, deadline: float) -> None:
        self.session = session
        self.options = ort.RunOptions()
        self.expired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        self.options.terminate = True

    def run(self, outputs: Any, feeds: dict) -> Any:
        if self.expired:
            raise _Expired()
        try:
            return self.session.run(outputs, feeds, self.options)
        except Exception:
            if self.expired:
                raise _Expired() from None
            raise

    def cancel(self) -> None:
        self._timer.cancel()


def _reset_peak_rss() -> bool:
    try:  # Linux >= 4.0: writing 5 resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_measurement(req: ProfileRequest, meter: EnergyMeter | None, meter_reason: str | None, deadline: float,
                    sessions: SessionCache | None = None) -> dict[str, Any]:
    """Measure ``req.model``; returns the JSON-ready result (without queue timing).

    ``result["session"]`` says whether the session came from ``sessions`` and how long
    creating it took otherwise.

    Raises:
        ApiError: 400 when onnxruntime rejects the model or it fails on the inputs,
            408 when the request's time limit passes during the measurement (its own
            settings are too long for it; retrying will not help).
    """
    reset = _reset_peak_rss()
    create = lambda: make_session(req.model, threads=req.threads, provider=req.execution_provider)  # noqa: E731
    t0 = time.perf_counter()
    try:
        if sessions is not None and req.model_sha256:
            session, reused = sessions.get_or_create((req.model_sha256, req.threads, req.execution_provider), create)
        else:
            session, reused = create(), False
    except Exception as e:  # onnxruntime's own exception types
        raise ApiError(400, "invalid_model", f"onnxruntime cannot load the model: {e}", field="model") from None
    create_s = None if reused else time.perf_counter() - t0
    feeds = make_feeds(session.get_inputs(), req)
    if time.monotonic() >= deadline:
        raise ApiError(408, "time_limit", f"loading the model alone outlasted time_limit_s={req.time_limit_s:g}", field="time_limit_s")
    guarded = _DeadlineSession(session, deadline)
    try:
        stats, energy, reason = timed_window(guarded, feeds, req.warmup, req.repetitions, req.min_duration_s, meter)
    except _Expired:
        raise ApiError(408, "time_limit", f"the measurement did not finish within time_limit_s={req.time_limit_s:g}; "
                       "lower repetitions/min_duration_s or raise the limit", field="time_limit_s") from None
    except Exception as e:
        raise ApiError(400, "model_failed", f"the model failed to run on the generated inputs: {e}", field="input_shapes") from None
    finally:
        guarded.cancel()
    peak = _peak_rss_mb() if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        peak_how = "peak RSS of the agent process over its lifetime (VmHWM could not be reset)"
    elif reused:
        peak_how = "peak RSS of the agent process during this measurement (VmHWM reset before it; the session was reused from an earlier request)"
    else:
        peak_how = "peak RSS of the agent process during this measurement (VmHWM reset before loading the model)"
    n = int(stats["n"])
    settings = req.settings()
    settings["input_shapes"] = {k: list(v.shape) for k, v in feeds.items()}
    if energy is not None:
        settings["min_duration_s"] = max(req.min_duration_s, meter.min_window_s)  # type: ignore[union-attr]
    return {
        "latency": stats,
        "latency_ms": {"value": stats["median_ms"], "unit": "ms", "source": "measured",
                       "how": f"median of {n} onnxruntime runs on the agent ({req.threads} thread(s), {req.execution_provider})"},
        "energy_mj": energy.to_metric().to_dict() if energy else None,
        "energy": energy.to_dict() if energy else {"meter": None, "reason": (reason if meter is not None else meter_reason) or "no energy meter"},
        "peak_memory_mb": peak,
        "peak_memory_how": peak_how,
        "settings": settings,
        "session": {"reused": reused, "create_s": create_s},
    }
