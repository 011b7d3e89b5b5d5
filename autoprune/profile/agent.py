"""The client of the on-device agent: ``profiler.kind: agent`` in a device profile.

The model is measured by an agent (``autoprune agent serve`` on the device). A request
names the model by its sha256; only when the agent answers 404 (it never saw that model,
or dropped it) are the raw bytes uploaded, once, with ``PUT /v1/models/{sha256}``, and the
request repeated. So re-measuring a model sends a few hundred bytes, not the model. An
agent too old to know ``model_sha256`` gets the model inline as base64, as before. Several URLs in ``agent.urls`` are identical devices forming a pool: each request
goes to the least busy one (round-robin among equals); a URL that does not answer is set
aside and the next one tried. When no agent answers after ``agent.retries`` rounds with
exponential backoff, :class:`AgentUnreachableError` says why, and the study records a
failed trial. Standard library only (``urllib``): nothing to install on either side.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..device import DeviceProfile
from ..exceptions import AgentUnreachableError, ConfigError, ProfilerError
from ..metrics import Metric
from .base import Measurement, Profiler, estimate_energy

__all__ = ["AgentProfiler", "AgentPool"]


class AgentPool:
    """Picks a URL per request: least in flight, then least recently used; failing URLs rest.

    Args:
        urls: Agent base URLs (identical devices).
        cooldown_s: How long a URL that failed is skipped while another is available.
    """

    def __init__(self, urls: tuple[str, ...] | list[str], cooldown_s: float = 5.0) -> None:
        if not urls:
            raise ConfigError("agent pool needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._inflight = {u: 0 for u in self.urls}
        self._down_until = {u: 0.0 for u in self.urls}
        self._last = {u: 0 for u in self.urls}
        self._tick = itertools.count(1)

    def acquire(self, exclude: set[str] = frozenset()) -> str | None:  # type: ignore[assignment]
        """The URL to use next (its in-flight count goes up), or None when all are excluded."""
        with self._lock:
            now = time.monotonic()
            candidates = [u for u in self.urls if u not in exclude]
            if not candidates:
                return None
            up = [u for u in candidates if self._down_until[u] <= now] or candidates
            url = min(up, key=lambda u: (self._inflight[u], self._last[u]))
            self._inflight[url] += 1
            self._last[url] = next(self._tick)
            return url

    def release(self, url: str, failed: bool = False) -> None:
        with self._lock:
            self._inflight[url] -= 1
            self._down_until[url] = time.monotonic() + self.cooldown_s if failed else 0.0


class _Busy(Exception):
    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _UnknownModel(ProfilerError):
    """404 ``unknown_model``: the agent does not hold the model named by ``model_sha256``."""


class _OldAgent(ProfilerError):
    """400 on the ``model_sha256`` field: an agent from before uploads by hash; send the model inline."""


class AgentProfiler(Profiler):
    """Measures on the device through its agent(s), with the device profile's settings.

    Args:
        device: A device profile with an ``agent:`` section.
    """

    def __init__(self, device: DeviceProfile) -> None:
        super().__init__(device)
        if device.agent is None:
            raise ConfigError(f"{device.path or device.name}: profiler.kind agent needs an agent: section")
        self.agent = device.agent
        self.pool = AgentPool(self.agent.urls)
        self._token: str | None = None
        self._token_read = False
        self._digests: dict[tuple, str] = {}
        self._inline_urls: set[str] = set()  # agents that only take the model inline

    def _auth(self) -> dict[str, str]:
        if not self._token_read:
            from ..agent.auth import read_token

            self._token = read_token(self.agent.token_file, self.agent.token_env, what=f"{self.device.path or self.device.name}: agent token")
            self._token_read = True
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def model_sha256(self, model_path: str | os.PathLike) -> str:
        """The file's sha256, remembered per (path, inode, size, mtime) so an unchanged file is read once."""
        try:
            st = os.stat(model_path)
            key = (os.path.abspath(model_path), st.st_ino, st.st_size, st.st_mtime_ns)
            if key not in self._digests:
                h = hashlib.sha256()
                with open(model_path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                if len(self._digests) >= 1024:
                    self._digests.clear()
                self._digests[key] = h.hexdigest()
        except OSError as e:
            raise ProfilerError(f"cannot read model {model_path}: {e.strerror or e}") from None
        return self._digests[key]

    def request_body(self, model_path: str | os.PathLike, inputs: dict[str, np.ndarray] | None = None, inline: bool = False) -> dict[str, Any]:
        """The JSON sent to ``POST /v1/profile``: the model by sha256, or (``inline``) as base64.

        Given inputs travel as shapes only: the agent makes the data.
        """
        s = self.device.profiler
        if inline:
            model = {"model": base64.b64encode(_read(model_path)).decode("ascii")}
        else:
            model = {"model_sha256": self.model_sha256(model_path)}
        body: dict[str, Any] = {
            **model,
            "threads": s.threads,
            "warmup": s.warmup,
            "repetitions": s.repetitions,
            "min_duration_s": s.min_duration_s,
            "execution_provider": s.execution_provider,
            "batch_size": s.batch_size,
            "time_limit_s": self.agent.timeout_s,
        }
        if inputs is not None:
            body["input_shapes"] = {k: [int(d) for d in np.shape(v)] for k, v in inputs.items()}
        return body

    def measure(self, model_path, inputs=None) -> Measurement:
        body = self.request_body(model_path, inputs)
        url, result = self._with_retries(lambda url: self._profile_on(url, model_path, inputs, body))
        return self._measurement(url, result)

    def _profile_on(self, url: str, model_path, inputs, body: dict[str, Any]) -> dict[str, Any]:
        """One attempt on one agent: by hash; on 404 upload the bytes and ask again."""
        if url not in self._inline_urls:
            payload = json.dumps(body).encode()
            try:
                return self._call(url, "POST", "/v1/profile", payload)
            except _UnknownModel:
                sha = body["model_sha256"]
                self._call(url, "PUT", f"/v1/models/{sha}", _read(model_path), "application/octet-stream")
                return self._call(url, "POST", "/v1/profile", payload)
            except _OldAgent:
                self._inline_urls.add(url)
        return self._call(url, "POST", "/v1/profile", json.dumps(self.request_body(model_path, inputs, inline=True)).encode())

    # -- transport -------------------------------------------------------------------

    def _call(self, url: str, method: str, path: str, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
        req = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Content-Type": content_type, **self._auth()})
        # The agent may queue the request behind others, then measure: allow for both.
        timeout = self.agent.timeout_s + 30.0
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read()).get("error", {})
            except (ValueError, AttributeError, OSError):
                err = {}
            message = err.get("message") or e.reason
            if e.code == 404 and err.get("code") == "unknown_model":
                raise _UnknownModel(f"agent {url} answered 404: {message}") from None
            if e.code == 400 and err.get("field") == "model_sha256" and "not a known field" in message:
                raise _OldAgent(f"agent {url} answered 400: {message}") from None
            if e.code in (429, 503):
                raise _Busy(_retry_after(e.headers.get("Retry-After")), f"{url}: {e.code} {message}") from None
            if e.code == 401:
                raise ConfigError(f"{url} rejected the agent token: check {self.agent.token_env or self.agent.token_file}") from None
            raise ProfilerError(f"agent {url} answered {e.code}: {message}") from None

    def _with_retries(self, call: Callable[[str], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """``call(url)`` on the pool's agents, round after round with backoff, until one answers."""
        failures: list[str] = []
        rounds = self.agent.retries + 1
        for attempt in range(rounds):
            tried: set[str] = set()
            wait = self.agent.backoff_s * (2 ** attempt)
            while (url := self.pool.acquire(tried)) is not None:
                tried.add(url)
                failed = True
                try:
                    result = call(url)
                    failed = False
                    return url, result
                except _Busy as b:
                    failed = False
                    failures.append(str(b))
                    wait = max(wait, b.retry_after)
                except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
                    failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
                finally:
                    self.pool.release(url, failed=failed)
            if attempt < rounds - 1:
                time.sleep(min(wait, self.agent.timeout_s))
        reasons = "; ".join(failures[-len(self.pool.urls) * 2:])
        if all(": 429 " in f or ": 503 " in f for f in failures):
            raise ProfilerError(f"agents stayed busy after {rounds} round(s): {reasons}")
        raise AgentUnreachableError(f"no agent answered after {rounds} round(s) with backoff: {reasons}")

    # -- result ----------------------------------------------------------------------

    def _measurement(self, url: str, r: dict[str, Any]) -> Measurement:
        try:
            stats = {k: float(r["latency"][k]) for k in ("median_ms", "p90_ms", "mean_ms", "std_ms", "cv")}
            stats["n"] = int(r["latency"]["n"])
            if "min_ms" in r["latency"]:  # an agent from before it was sent has none
                stats["min_ms"] = float(r["latency"]["min_ms"])
            latency = Metric.from_dict(r["latency_ms"])
        except (KeyError, TypeError, ValueError) as e:
            raise ProfilerError(f"agent {url} sent a result without {e}") from None
        latency = Metric(latency.value, latency.unit, latency.source, f"{latency.how} at {url}")
        energy_info = r.get("energy") or {}
        if r.get("energy_mj"):
            energy = Metric.from_dict(r["energy_mj"])
        else:
            energy = estimate_energy(stats["median_ms"], self.device)
            if energy is not None:
                energy = Metric(energy.value, energy.unit, energy.source,
                                f"{energy.how} (agent has no meter: {energy_info.get('reason', 'unknown')})")
        settings = {"profiler": "agent", "url": url, **(r.get("settings") or {})}
        device = {"name": self.device.name, "url": url, **(r.get("device") or {}),
                  "meter": energy_info.get("meter") or "none (estimated from device profile power)",
                  "energy_detail": energy_info, "timing": r.get("timing"), "session": r.get("session")}
        if r.get("peak_memory_how"):
            device["peak_memory_how"] = r["peak_memory_how"]
        return Measurement(latency_ms=latency, latency=stats, energy_mj=energy, settings=settings, device=device,
                           peak_memory_mb=r.get("peak_memory_mb"))


def _read(model_path: str | os.PathLike) -> bytes:
    try:
        return Path(model_path).read_bytes()
    except OSError as e:
        raise ProfilerError(f"cannot read model {model_path}: {e.strerror or e}") from None


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0

