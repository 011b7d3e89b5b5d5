"""The body of ``POST /v1/profile``: checked field by field, errors name the field.

A request is JSON::

    {"model_sha256": "<sha256 of a model uploaded with PUT /v1/models/{sha256}>",
     "threads": 1, "warmup": 10, "repetitions": 100, "min_duration_s": 0.0,
     "execution_provider": "CPUExecutionProvider", "batch_size": 1,
     "input_shapes": {"x": [1, 3, 32, 32]}, "time_limit_s": 60}

The model is named by ``model_sha256`` (uploaded before) or sent inline as ``model``
(base64 of the .onnx file, the older form); exactly one of the two is required. Input
shapes not given come from the model, with symbolic dimensions set to ``batch_size``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from typing import Any, Callable

import numpy as np

from ..profile.timing import ORT_DTYPES
from .errors import ApiError
from .store import is_sha256, sha256_hex

__all__ = ["ProfileRequest", "parse_profile_request", "make_feeds", "MAX_INPUT_ELEMENTS"]

# Per request, all inputs together: 64 Mi elements is 256 MiB of float32.
MAX_INPUT_ELEMENTS = 1 << 26


# name: (type, default, lo, hi)
_NUMBERS: dict[str, tuple[type, Any, float, float]] = {
    "threads": (int, 1, 1, 256),
    "warmup": (int, 10, 0, 10_000),
    "repetitions": (int, 100, 1, 100_000),
    "min_duration_s": (float, 0.0, 0.0, 60.0),
    "batch_size": (int, 1, 1, 4096),
}


@dataclasses.dataclass(frozen=True)
class ProfileRequest:
    """A validated profile request (the model still as bytes, not yet parsed)."""

    model: bytes
    model_sha256: str = ""
    threads: int = 1
    warmup: int = 10
    repetitions: int = 100
    min_duration_s: float = 0.0
    execution_provider: str = "CPUExecutionProvider"
    batch_size: int = 1
    input_shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    time_limit_s: float = 60.0

    def settings(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        del d["model"]
        d["input_shapes"] = {k: list(v) for k, v in self.input_shapes.items()}
        return d


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field} {message}", field=field)


def _number(body: dict, name: str, kind: type, default: Any, lo: float, hi: float) -> Any:
    v = body.get(name, default)
    ok = not isinstance(v, bool) and (isinstance(v, int) if kind is int else isinstance(v, (int, float)) and math.isfinite(v))
    if not ok or not lo <= v <= hi:
        what = "an integer" if kind is int else "a number"
        raise _bad(name, f"must be {what} in [{lo}, {hi}], got {v!r}")
    return kind(v)


def _model(body: dict, models: Callable[[str], bytes | None] | None) -> tuple[bytes, str]:
    """The model's bytes and sha256, from ``model_sha256`` (a stored upload) or inline ``model``."""
    if "model" in body and "model_sha256" in body:
        raise _bad("model_sha256", "and model are exclusive: name an uploaded model or send one inline, not both")
    if "model_sha256" in body:
        sha = body["model_sha256"]
        if not is_sha256(sha):
            raise _bad("model_sha256", f"must be 64 lowercase hex digits (the sha256 of the .onnx file), got {sha!r}")
        data = models(sha) if models is not None else None
        if data is None:
            raise ApiError(404, "unknown_model", f"model_sha256 {sha} is not on this agent (never uploaded, or evicted): "
                           f"PUT the .onnx file to /v1/models/{sha}, then retry", field="model_sha256")
        return data, sha
    if "model" not in body:
        raise _bad("model", "is required (base64 of the .onnx file), or model_sha256 of an uploaded one")
    m = body["model"]
    if not isinstance(m, str):
        raise _bad("model", f"must be a base64 string, got {type(m).__name__}")
    try:
        data = base64.b64decode(m, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _bad("model", f"is not valid base64: {e}") from None
    return data, sha256_hex(data)


def parse_profile_request(body: Any, providers: list[str], max_time_limit_s: float, max_threads: int | None = None,
                          models: Callable[[str], bytes | None] | None = None) -> ProfileRequest:
    """Check a decoded JSON body.

    Args:
        body: The decoded JSON.
        providers: Execution providers this onnxruntime has.
        max_time_limit_s: The agent's cap on ``time_limit_s`` (also its default).
        max_threads: The device's core count: more threads than cores only measures contention.
        models: Looks up an uploaded model's bytes by sha256 (None when it is not stored).

    Raises:
        ApiError: 400 naming the field at fault; 404 for a ``model_sha256`` the agent does not hold.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"the body must be a JSON object, got {type(body).__name__}")
    known = {"model", "model_sha256", "execution_provider", "input_shapes", "time_limit_s", *_NUMBERS}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _bad(unknown[0], f"is not a known field (known: {sorted(known)})")
    values = {name: _number(body, name, *spec) for name, spec in _NUMBERS.items()}
    if max_threads is not None and values["threads"] > max_threads:
        raise _bad("threads", f"must be at most {max_threads} (this device's cores), got {values['threads']}")
    provider = body.get("execution_provider", "CPUExecutionProvider")
    if not isinstance(provider, str) or provider not in providers:
        raise _bad("execution_provider", f"must be one of {providers} (this agent's onnxruntime), got {provider!r}")
    limit = _number(body, "time_limit_s", float, max_time_limit_s, 0.001, max_time_limit_s)
    shapes = body.get("input_shapes", {})
    if not isinstance(shapes, dict):
        raise _bad("input_shapes", f"must be an object mapping input names to lists of dimensions, got {shapes!r}")
    checked: dict[str, tuple[int, ...]] = {}
    for name, dims in shapes.items():
        if not isinstance(dims, list) or len(dims) > 16 or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 24 for d in dims):
            raise _bad(f"input_shapes.{name}", f"must be a list of at most 16 integers in [1, {1 << 24}], got {dims!r}")
        checked[name] = tuple(dims)
    model, sha = _model(body, models)  # last: a client told 404 uploads, so every other field is checked first
    return ProfileRequest(model=model, model_sha256=sha, execution_provider=provider, input_shapes=checked, time_limit_s=limit, **values)


def make_feeds(inputs: list[Any], req: ProfileRequest, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs for the session's ``inputs`` (``NodeArg`` list).

    Raises:
        ApiError: 400 for an unknown input name, a shape that contradicts the model, a
            dtype the agent cannot make, or inputs too large.
    """
    names = [i.name for i in inputs]
    for name in req.input_shapes:
        if name not in names:
            raise _bad(f"input_shapes.{name}", f"names no input of the model (inputs: {names})")
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    total = 0
    for inp in inputs:
        if inp.type not in ORT_DTYPES:
            raise ApiError(400, "unsupported_input", f"input {inp.name!r} has type {inp.type}, which the agent cannot generate (supported: {sorted(ORT_DTYPES)})", field=f"input_shapes.{inp.name}")
        declared = list(inp.shape or [])
        if inp.name in req.input_shapes:
            shape = list(req.input_shapes[inp.name])
            if len(shape) != len(declared):
                raise _bad(f"input_shapes.{inp.name}", f"has rank {len(shape)}, the model declares {declared}")
            for i, (want, got) in enumerate(zip(declared, shape)):
                if isinstance(want, int) and want > 0 and want != got:
                    raise _bad(f"input_shapes.{inp.name}", f"dimension {i} is {got}, the model fixes it to {want}")
        else:
            shape = [d if isinstance(d, int) and d > 0 else req.batch_size for d in declared]
        total += math.prod(shape)
        if total > MAX_INPUT_ELEMENTS:
            raise ApiError(400, "inputs_too_large", f"inputs exceed {MAX_INPUT_ELEMENTS} elements in all (input {inp.name!r} has shape {shape})", field=f"input_shapes.{inp.name}")
        dtype = ORT_DTYPES[inp.type]
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds
