"""One measurement at a time, first come first served, with a bounded waiting line.

Timings taken while another model runs are worthless, so the agent serialises every
measurement (session creation included) behind one slot. A request that finds the line
full gets 429 at once; one that waits longer than its time limit gets 503. Both carry a
``Retry-After`` computed from recent measurement durations.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from typing import Iterator

from .errors import ApiError

__all__ = ["MeasurementQueue"]


class MeasurementQueue:
    """A single slot plus a FIFO of at most ``capacity`` waiting requests.

    Args:
        capacity: How many requests may wait while one is measured.
    """

    def __init__(self, capacity: int = 16) -> None:
        if capacity < 0:
            raise ValueError(f"queue capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._waiting: collections.deque[object] = collections.deque()
        self._busy = False
        self._done = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=20)

    def retry_after_s(self) -> int:
        """Seconds until a new request would likely get the slot (at least 1)."""
        with self._cond:
            return self._retry_locked()

    def full(self) -> bool:
        with self._cond:
            return self._busy and len(self._waiting) >= self.capacity

    def stats(self) -> dict[str, object]:
        with self._cond:
            return {"busy": self._busy, "waiting": len(self._waiting), "capacity": self.capacity, "completed": self._done}

    @contextlib.contextmanager
    def slot(self, timeout_s: float) -> Iterator[float]:
        """Hold the measurement slot; yields the seconds spent waiting for it.

        Raises:
            ApiError: 429 when the line is full, 503 when ``timeout_s`` passes in line.
        """
        me = object()
        t0 = time.monotonic()
        with self._cond:
            if self._busy and len(self._waiting) >= self.capacity:
                raise ApiError(429, "queue_full", f"{len(self._waiting)} measurements are already waiting (capacity {self.capacity})",
                               headers={"Retry-After": str(self._retry_locked())})
            self._waiting.append(me)
            deadline = t0 + timeout_s
            while self._busy or self._waiting[0] is not me:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.remove(me)
                    self._cond.notify_all()  # the next in line may now be first
                    raise ApiError(503, "time_limit", f"waited {timeout_s:g} s (the request's time_limit_s) without getting the measurement slot",
                                   field="time_limit_s", headers={"Retry-After": str(self._retry_locked())})
                self._cond.wait(left)
            self._waiting.popleft()
            self._busy = True
        started = time.monotonic()
        try:
            yield started - t0
        finally:
            with self._cond:
                self._busy = False
                self._done += 1
                self._recent.append(time.monotonic() - started)
                self._cond.notify_all()

    def _retry_locked(self) -> int:
        mean = sum(self._recent) / len(self._recent) if self._recent else 1.0
        return max(1, math.ceil(mean * (len(self._waiting) + (1 if self._busy else 0))))
