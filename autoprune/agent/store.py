"""What the agent keeps between requests: uploaded models by sha256, and their sessions.

A study measures the same model more than once (re-measurements, the benchmark's repeated
requests), and a 16 MB model sent as base64 inside every request cost more than the
measurement itself. So a client uploads the raw bytes once (``PUT /v1/models/{sha256}``)
and then names them by hash. Both caches are least-recently-used and bounded: models by
total bytes, sessions by count.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
from typing import Any, Callable, Hashable

__all__ = ["ModelStore", "SessionCache", "sha256_hex", "is_sha256"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256(text: object) -> bool:
    """True for 64 lowercase hex digits (how the agent names a model)."""
    return isinstance(text, str) and _SHA256.fullmatch(text) is not None


class ModelStore:
    """Screened model bytes keyed by their sha256, at most ``capacity_bytes`` in all.

    Args:
        capacity_bytes: Total size kept; the least recently used models are dropped first.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._models: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            data = self._models.get(sha256)
            if data is not None:
                self._models.move_to_end(sha256)
            return data

    def put(self, sha256: str, data: bytes) -> bool:
        """Keep ``data`` (already screened) under ``sha256``; False when it alone exceeds the capacity."""
        if len(data) > self.capacity_bytes:
            return False
        with self._lock:
            if sha256 in self._models:
                self._models.move_to_end(sha256)
                return True
            while self._models and self._size + len(data) > self.capacity_bytes:
                _, old = self._models.popitem(last=False)
                self._size -= len(old)
            self._models[sha256] = data
            self._size += len(data)
            return True

    def __contains__(self, sha256: object) -> bool:
        with self._lock:
            return sha256 in self._models

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"models": len(self._models), "bytes": self._size, "capacity_bytes": self.capacity_bytes}


class SessionCache:
    """onnxruntime sessions keyed by ``(sha256, threads, provider)``, at most ``capacity`` of them.

    Used with the measurement slot held, so creating a session never overlaps another
    model's timing. A small bound (default 1 in :class:`~autoprune.agent.AgentConfig`) keeps
    the agent's resident memory, which the peak-RSS figure includes, close to one model's.

    Args:
        capacity: Sessions kept; 0 disables the cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._sessions: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get_or_create(self, key: Hashable, create: Callable[[], Any]) -> tuple[Any, bool]:
        """The cached session for ``key`` and True, or a new one from ``create()`` and False."""
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key], True
            # Drop the oldest before creating, so two large sessions never coexist needlessly.
            while self._sessions and len(self._sessions) >= max(self.capacity, 1):
                self._sessions.popitem(last=False)
        session = create()
        if self.capacity > 0:
            with self._lock:
                self._sessions[key] = session
        return session, False

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
