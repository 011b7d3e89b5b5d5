"""The fallback: a datasheet power figure times wall time, labelled ``estimated``."""

from __future__ import annotations

import time
from typing import Any

from .base import EnergyMeter, MeterUnavailable

__all__ = ["EstimateMeter"]


class EstimateMeter(EnergyMeter):
    """Energy = ``watts`` x window length. Not a measurement: its ``source`` is ``estimated``.

    Args:
        watts: Average power while the model runs (from the device profile).
        how: Where the figure comes from, quoted in every reading.
    """

    name = "estimate"
    source = "estimated"
    min_window_s = 0.0  # nothing is sampled, so any window gives the same figure

    def __init__(self, watts: float | None, how: str = "") -> None:
        self.watts = watts
        self.how = how
        self._t0: float | None = None

    def probe(self) -> None:
        if self.watts is None:
            raise MeterUnavailable("estimate: the device profile gives no power.watts")

    def start(self) -> None:
        self.probe()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self._t0 is None:
            raise MeterUnavailable("estimate: stop() called before start()")
        elapsed, self._t0 = time.perf_counter() - self._t0, None
        return float(self.watts) * elapsed  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "watts": self.watts, "how": self.how or "no source given"}
