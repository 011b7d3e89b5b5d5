"""The energy-meter interface: ``start()`` then ``stop() -> joules`` over a window of work.

A meter measures the energy the device used between ``start`` and ``stop``. Counter meters
(RAPL, NVML) read a cumulative counter twice; power meters (hwmon rails) sample power in a
background thread and integrate it. The estimate meter multiplies a datasheet figure by the
wall time and says so (``source = "estimated"``). Nothing here imports torch.
"""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar

from ..exceptions import ProfilerError

__all__ = ["EnergyMeter", "CounterMeter", "MeterUnavailable", "MIN_WINDOW_S"]

# Counters tick every ~1 ms (RAPL) to ~15 ms (NVML, INA3221 sampling): integrate over at
# least this long so one tick is under ~1.5 % of the reading.
MIN_WINDOW_S = 1.0


class MeterUnavailable(ProfilerError):
    """A meter exists in principle but cannot be read here; the message says why."""


class EnergyMeter(abc.ABC):
    """Energy used by the device over a window.

    Subclasses set ``name`` (the registry key), ``source`` (``measured`` or ``estimated``)
    and ``min_window_s`` (the shortest window that gives a meaningful reading).
    """

    name: ClassVar[str] = ""
    source: ClassVar[str] = "measured"
    min_window_s: ClassVar[float] = MIN_WINDOW_S

    @abc.abstractmethod
    def probe(self) -> None:
        """Check the meter can be read.

        Raises:
            MeterUnavailable: with the reason (no such file, permission denied, no driver).
        """

    @abc.abstractmethod
    def start(self) -> None:
        """Begin a window."""

    @abc.abstractmethod
    def stop(self) -> float:
        """End the window; returns the joules used since :meth:`start`."""

    def describe(self) -> dict[str, Any]:
        """What is measured, for reports (e.g. which RAPL zones or hwmon rails)."""
        return {"name": self.name, "source": self.source}


class CounterMeter(EnergyMeter):
    """A meter over a cumulative energy counter that wraps around at ``max_joules``."""

    def __init__(self) -> None:
        self._start: list[float] | None = None
        self._t0 = 0.0

    @abc.abstractmethod
    def read(self) -> list[float]:
        """Current counter values in joules, one per channel (zone, GPU)."""

    @abc.abstractmethod
    def max_joules(self) -> list[float | None]:
        """Per channel, the value at which the counter wraps to 0 (None: never wraps)."""

    def probe(self) -> None:
        self.read()

    def start(self) -> None:
        self._start = self.read()
        self._t0 = time.monotonic()

    def stop(self) -> float:
        if self._start is None:
            raise ProfilerError(f"{self.name} meter: stop() called before start()")
        end = self.read()
        total = 0.0
        for before, after, top in zip(self._start, end, self.max_joules()):
            delta = after - before
            if delta < 0:
                if top is None:
                    raise ProfilerError(f"{self.name} meter: counter went backwards ({before} -> {after})")
                # One wrap per window at most: a RAPL package counter (range ~262 kJ)
                # wraps after ~45 min at 100 W, and windows here last seconds.
                delta += top
            total += delta
        self._start = None
        return total
