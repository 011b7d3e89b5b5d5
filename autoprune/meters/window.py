"""One timed window: latency statistics and, when a meter is given, energy per inference.

Shared by the local profiler and the on-device agent so both measure the same way. Warm-up
runs come first and are not metered; the timed runs then last at least the meter's
``min_window_s`` so the energy reading integrates over enough inferences.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..metrics import Metric
from .base import EnergyMeter, MeterUnavailable

__all__ = ["EnergyReading", "timed_window"]


@dataclasses.dataclass(frozen=True)
class EnergyReading:
    """Energy per inference over one window, with the meter that gave it."""

    mj_per_inference: float
    source: str
    meter: str
    window_s: float
    runs: int
    how: str

    def to_metric(self) -> Metric:
        return Metric(self.mj_per_inference, "mJ", self.source, self.how)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def timed_window(
    session: Any,
    feeds: dict[str, np.ndarray],
    warmup: int,
    repetitions: int,
    min_duration_s: float = 0.0,
    meter: EnergyMeter | None = None,
) -> tuple[dict[str, float], EnergyReading | None, str | None]:
    """Warm up, then time ``session.run`` with the meter running around the timed runs.

    Returns:
        ``(latency_stats, energy, reason)``: ``energy`` is None when no meter is given or
        the meter failed; ``reason`` then says why.
    """
    # Imported here: autoprune.profile imports the meters (its local profiler detects one), so a
    # module-level import would make the two packages import each other.
    from ..profile.timing import time_session

    for _ in range(warmup):
        session.run(None, feeds)
    if meter is None:
        stats, _ = time_session(session, feeds, 0, repetitions, min_duration_s)
        return stats, None, "no energy meter"
    window = max(min_duration_s, meter.min_window_s)
    try:
        meter.start()
    except MeterUnavailable as e:
        stats, _ = time_session(session, feeds, 0, repetitions, min_duration_s)
        return stats, None, str(e)
    try:
        stats, wall = time_session(session, feeds, 0, repetitions, window)
    finally:
        try:
            joules = meter.stop()
        except MeterUnavailable as e:
            joules, reason = None, str(e)
    if joules is None:
        return stats, None, reason
    n = int(stats["n"])
    desc = meter.describe()
    if meter.source == "estimated":
        how = f"{desc.get('watts')} W ({desc.get('how')}) x {wall:.2f} s window / {n} runs"
    else:
        parts = desc.get("zones") or desc.get("rails") or desc.get("gpus") or []
        how = f"{meter.name} meter{(' ' + ', '.join(map(str, parts))) if parts else ''}: {joules:.4g} J over a {wall:.2f} s window / {n} runs"
    reading = EnergyReading(joules * 1e3 / n, meter.source, meter.name, wall, n, how)
    return stats, reading, None
