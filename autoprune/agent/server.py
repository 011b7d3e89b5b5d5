"""The agent's HTTP server: stdlib ``ThreadingHTTPServer``, JSON in and out, bearer token.

Routes (all under ``/v1``): ``GET health``, ``GET openapi.json`` (no token), ``GET device``,
``PUT models/{sha256}`` (raw model upload) and ``POST profile`` (token). Every answer, errors included, is a JSON object; an
unexpected exception in a request becomes a 500 for that request and the agent stays up.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import onnxruntime as ort

from .. import __version__
from ..exceptions import ConfigError
from ..meters import Detection, detect_meter
from .deviceinfo import cpu_info, device_info
from .errors import ApiError
from .measure import run_measurement
from .modelcheck import ModelRejected, check_model_bytes
from .openapi import openapi_spec
from .queue import MeasurementQueue
from .request import parse_profile_request
from .store import ModelStore, SessionCache, is_sha256, sha256_hex

__all__ = ["AgentConfig", "AgentServer", "is_loopback"]

log = logging.getLogger("autoprune.agent")

_MODELS = "/v1/models/"
_ROUTES = {"/v1/health": ("GET",), "/v1/openapi.json": ("GET",), "/v1/device": ("GET",), "/v1/profile": ("POST",),
           _MODELS + "{sha256}": ("PUT",)}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; any other name or address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """How the agent listens and what it accepts.

    Args:
        host: Address to bind. A non-loopback address requires ``token``.
        port: TCP port; 0 picks a free one.
        token: The bearer token clients must send; None disables auth (loopback only).
        max_body_mb: Largest request body accepted (base64 makes a model ~4/3 larger).
        model_cache_mb: Total size of uploaded models kept for ``model_sha256`` requests (LRU).
        session_cache: onnxruntime sessions kept for repeated requests (LRU; 0 disables).
            The peak-RSS figure includes them, hence the default of one.
        read_timeout_s: Longest wait for the request to arrive (else 408).
        max_time_limit_s: Cap and default of a request's ``time_limit_s``.
        queue_capacity: Requests that may wait while one is measured (more get 429).
        meter_roots: sysfs directories for meters, ``{"powercap": ..., "hwmon": ...}``.
        meter_order: Meter names to try, overriding the per-provider default.
        cpu_root: sysfs cpu directory (for the cpufreq governor).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = dataclasses.field(default=None, repr=False)
    max_body_mb: float = 64.0
    model_cache_mb: float = 256.0
    session_cache: int = 1
    read_timeout_s: float = 30.0
    max_time_limit_s: float = 300.0
    queue_capacity: int = 16
    meter_roots: dict[str, str] = dataclasses.field(default_factory=dict)
    meter_order: tuple[str, ...] | None = None
    cpu_root: str = "/sys/devices/system/cpu"

    def __post_init__(self) -> None:
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(f"refusing to listen on {self.host!r} without a token: pass --token-file (or bind 127.0.0.1)")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the agent token is empty")
        for name in ("max_body_mb", "model_cache_mb", "read_timeout_s", "max_time_limit_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"agent {name} must be > 0, got {getattr(self, name)!r}")
        if self.queue_capacity < 0:
            raise ConfigError(f"agent queue_capacity must be >= 0, got {self.queue_capacity}")
        if self.session_cache < 0:
            raise ConfigError(f"agent session_cache must be >= 0, got {self.session_cache}")


class _State:
    """What request handlers share: config, queue, meters, stored models and sessions, a counter."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.queue = MeasurementQueue(config.queue_capacity)
        self.models = ModelStore(int(config.model_cache_mb * 1024 * 1024))
        self.sessions = SessionCache(config.session_cache)
        self.providers = ort.get_available_providers()
        self._meters: dict[str, Detection] = {}
        self._lock = threading.Lock()
        self.sequence = 0
        cpu = cpu_info(config.cpu_root)
        self.summary = {"agent_version": __version__, "cpu": cpu["model"], "cores": cpu["cores"],
                        "onnxruntime": ort.__version__, "governor": cpu["governor"]}

    def meter(self, provider: str) -> Detection:
        with self._lock:
            if provider not in self._meters:
                self._meters[provider] = detect_meter(provider, self.config.meter_roots, self.config.meter_order)
            return self._meters[provider]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"autoprune-agent/{__version__}"
    server: "_Server"

    def setup(self) -> None:
        self.timeout = self.server.state.config.read_timeout_s  # applies to every socket read
        super().setup()

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any method without a handler: 405, not http.server's 501
            return self._dispatch
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    # -- plumbing --------------------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header too long) as JSON."""
        self.close_connection = True
        self._send(code, ApiError(code, "bad_http", message or self.responses.get(code, ("error",))[0]).body(), {"Connection": "close"})

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _linger(self, max_s: float = 2.0) -> None:
        """Read and drop what the client is still sending, so it sees our answer, not a reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            end = time.monotonic() + max_s
            while time.monotonic() < end and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    def _dispatch(self) -> None:
        self._body_read = False
        path = self.path.split("?", 1)[0]
        route = _MODELS + "{sha256}" if path.startswith(_MODELS) else path
        state = self.server.state
        status = 200
        try:
            if route not in _ROUTES:
                raise ApiError(404, "not_found", f"no such path {path!r} (paths: {sorted(_ROUTES)})")
            if self.command not in _ROUTES[route]:
                raise ApiError(405, "method_not_allowed", f"{self.command} is not allowed on {path}", headers={"Allow": ", ".join(_ROUTES[route])})
            if path == "/v1/health":
                body = {"status": "ok", "version": __version__, "queue": state.queue.stats(), "models": state.models.stats()}
            elif path == "/v1/openapi.json":
                body = openapi_spec()
            elif path == "/v1/device":
                self._authorize()
                meters = {p: state.meter(p).describe() for p in state.providers}
                body = device_info(meters, state.config.cpu_root)
            elif path.startswith(_MODELS):
                status, body = self._upload(path[len(_MODELS):])
            else:
                body = self._profile()
            self._send(status, body)
        except ApiError as e:
            unread = not self._body_read and (self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers)
            if unread:
                self.close_connection = True  # never parse an unread body as the next request
                e.headers.setdefault("Connection", "close")
            self._send(e.status, e.body(), e.headers)
            if unread:
                self._linger()
        except Exception:  # a bug: answer 500 for this request and keep serving
            log.error("internal error on %s %s\n%s", self.command, path, traceback.format_exc())
            self.close_connection = True
            self._send(500, ApiError(500, "internal", "internal error in the agent (see its log)").body(), {"Connection": "close"})

    def _authorize(self) -> None:
        token = self.server.state.config.token
        if token is None:
            return
        got = (self.headers.get("Authorization") or "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(got, f"Bearer {token}".encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": 'Bearer realm="autoprune-agent"'})

    def _read_body(self, content_type: str = "application/json", measures: bool = True) -> bytes:
        """The request body, refused before it is read when too large (or, if ``measures``, when the line is full)."""
        cfg = self.server.state.config
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ApiError(411, "length_required", "chunked uploads are not accepted: send Content-Length")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != content_type:
            raise ApiError(415, "unsupported_media_type", f"Content-Type must be {content_type}, got {ctype or 'none'!r}")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise ApiError(411, "length_required", "Content-Length is required")
        if not raw.strip().isdigit():
            raise ApiError(400, "bad_length", f"Content-Length must be a non-negative integer, got {raw!r}")
        n = int(raw)
        limit = int(cfg.max_body_mb * 1024 * 1024)
        if n > limit:
            raise ApiError(413, "too_large", f"the body is {n} bytes; this agent accepts at most {limit} (max_body_mb={cfg.max_body_mb:g})")
        if measures and self.server.state.queue.full():  # refuse before the upload, not after
            raise ApiError(429, "queue_full", "the waiting line is full", headers={"Retry-After": str(self.server.state.queue.retry_after_s())})
        try:
            data = self.rfile.read(n)
        except TimeoutError:
            raise ApiError(408, "request_timeout", f"the body did not arrive within {cfg.read_timeout_s:g} s") from None
        self._body_read = True
        if len(data) != n:
            raise ApiError(400, "short_body", f"the connection closed after {len(data)} of {n} body bytes")
        return data

    def _upload(self, sha: str) -> tuple[int, dict[str, Any]]:
        """``PUT /v1/models/{sha256}``: keep the raw .onnx bytes for later ``model_sha256`` requests."""
        state = self.server.state
        self._authorize()
        if not is_sha256(sha):
            raise ApiError(400, "invalid_sha256", f"the path must end in the model's sha256 (64 lowercase hex digits), got {sha[:80]!r}", field="sha256")
        data = self._read_body("application/octet-stream", measures=False)
        got = sha256_hex(data)
        if got != sha:
            raise ApiError(400, "sha256_mismatch", f"the body's sha256 is {got}, not {sha} as the path says (truncated or wrong file?)", field="sha256")
        try:
            check_model_bytes(data)
        except ModelRejected as e:
            raise ApiError(400, "invalid_model", str(e), field="model") from None
        known = sha in state.models
        if not state.models.put(sha, data):
            raise ApiError(413, "too_large", f"the model is {len(data)} bytes; this agent keeps at most {state.models.capacity_bytes} "
                           f"(model_cache_mb={state.config.model_cache_mb:g}): send it inline with POST /v1/profile instead")
        return (200 if known else 201), {"sha256": sha, "size_bytes": len(data), "stored": "already" if known else "new",
                                         "models": state.models.stats()}

    def _profile(self) -> dict[str, Any]:
        state = self.server.state
        received_wall, received = time.time(), time.monotonic()
        self._authorize()
        data = self._read_body()
        try:
            body = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {e}") from None
        req = parse_profile_request(body, state.providers, state.config.max_time_limit_s, os.cpu_count(), state.models.get)
        if "model" in body:  # inline; a model_sha256 names an upload that was screened when it arrived
            try:
                check_model_bytes(req.model)
            except ModelRejected as e:
                raise ApiError(400, "invalid_model", str(e), field="model") from None
            state.models.put(req.model_sha256, req.model)
        deadline = received + req.time_limit_s
        detection = state.meter(req.execution_provider)
        reason = None if detection.meter else "; ".join(detection.reasons.values()) or "no energy meter found"
        with state.queue.slot(max(0.0, deadline - time.monotonic())) as waited:
            state.sequence += 1
            seq = state.sequence
            started = time.time()
            result = run_measurement(req, detection.meter, reason, deadline, state.sessions)
            finished = time.time()
        result["device"] = {**state.summary, "meter": detection.meter.name if detection.meter else None}
        result["timing"] = {"received_at": received_wall, "started_at": started, "finished_at": finished,
                            "queue_wait_s": waited, "sequence": seq}
        return result


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: _State


class AgentServer:
    """The profiling agent. ``start()`` serves in a background thread; ``serve_forever()`` blocks.

    Args:
        config: Listening address, token and limits.
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> "_Server":
        if self._httpd is None:
            httpd = _Server((self.config.host, self.config.port), _Handler, bind_and_activate=True)
            httpd.state = _State(self.config)
            self._httpd = httpd
        return self._httpd

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (after :meth:`bind` or :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("the agent is not bound: call bind() or start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in str(host) else host}:{port}"

    def start(self) -> "AgentServer":
        httpd = self.bind()
        self._thread = threading.Thread(target=httpd.serve_forever, name="autoprune-agent", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.bind().serve_forever()

    def shutdown(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.server_close()
            self._httpd = None
            self._thread = None
