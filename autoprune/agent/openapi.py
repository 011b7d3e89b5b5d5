"""The agent's OpenAPI 3.0 description, served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from .. import __version__

__all__ = ["openapi_spec"]


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    resp: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if retry_after:
        resp["headers"] = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    return resp


_METRIC = {
    "type": "object",
    "required": ["value", "unit", "source", "how"],
    "properties": {
        "value": {"type": "number"},
        "unit": {"type": "string"},
        "source": {"type": "string", "enum": ["measured", "estimated", "modelled", "simulated"]},
        "how": {"type": "string"},
    },
}

# y = Relu(x), x: float[1, 4]; serialised with onnx.helper, 100 bytes.
EXAMPLE_MODEL_B64 = "CAg6PgoMCgF4EgF5IgRSZWx1EgRyZWx1WhMKAXgSDgoMCAESCAoCCAEKAggEYhMKAXkSDgoMCAESCAoCCAEKAggEQgQKABAR"

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "minLength": 64, "maxLength": 64,
           "description": "sha256 of the .onnx file, 64 lowercase hex digits"}

_PROFILE_REQUEST = {
    "type": "object",
    "example": {"model": EXAMPLE_MODEL_B64, "threads": 1, "warmup": 5, "repetitions": 50},
    "description": "exactly one of model_sha256 (a model uploaded with PUT /v1/models/{sha256}) and model (inline base64)",
    "additionalProperties": False,
    "properties": {
        "model_sha256": {**_SHA256, "description": "a model uploaded before with PUT /v1/models/{sha256}; 404 when the agent does not hold it"},
        "model": {"type": "string", "format": "byte", "description": "base64 of the .onnx file (the inline form); no external data, standard domains only"},
        "threads": {"type": "integer", "minimum": 1, "maximum": 256, "default": 1},
        "warmup": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 10},
        "repetitions": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100},
        "min_duration_s": {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
        "execution_provider": {"type": "string", "default": "CPUExecutionProvider"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 1,
                       "description": "value of symbolic input dimensions not set by input_shapes"},
        "input_shapes": {"type": "object", "additionalProperties": {
            "type": "array", "maxItems": 16, "items": {"type": "integer", "minimum": 1, "maximum": 16777216}}},
        "time_limit_s": {"type": "number", "minimum": 0.001, "description": "waiting plus measuring; capped by the agent"},
    },
}

_PROFILE_RESULT = {
    "type": "object",
    "required": ["latency", "latency_ms", "energy_mj", "energy", "peak_memory_mb", "settings", "device", "timing"],
    "properties": {
        "latency": {"type": "object", "required": ["median_ms", "p90_ms", "mean_ms", "std_ms", "cv", "n"],
                    "properties": {k: {"type": "number"} for k in ("median_ms", "p90_ms", "min_ms", "mean_ms", "std_ms", "cv", "n")}},
        "latency_ms": _METRIC,
        "energy_mj": {**_METRIC, "nullable": True},
        "energy": {"type": "object", "description": "the meter used and its window, or why there is none"},
        "peak_memory_mb": {"type": "number", "nullable": True},
        "peak_memory_how": {"type": "string"},
        "settings": {"type": "object"},
        "session": {"type": "object", "description": "reused: the onnxruntime session came from the agent's cache; create_s otherwise"},
        "device": {"type": "object"},
        "timing": {"type": "object", "required": ["received_at", "started_at", "finished_at", "queue_wait_s", "sequence"],
                   "description": "unix times; started_at/finished_at bound the measurement slot",
                   "properties": {"received_at": {"type": "number"}, "started_at": {"type": "number"},
                                  "finished_at": {"type": "number"}, "queue_wait_s": {"type": "number"},
                                  "sequence": {"type": "integer"}}},
    },
}


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    auth_errors = {"401": _error("missing or wrong bearer token")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "autoprune profiling agent", "version": __version__,
                 "description": "Measures latency and energy of ONNX models on this device, one at a time."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["status", "code", "message"],
                    "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                                   "message": {"type": "string"}, "field": {"type": "string"}}}}},
                "ProfileRequest": _PROFILE_REQUEST,
                "ProfileResult": _PROFILE_RESULT,
                "StoredModel": {"type": "object", "required": ["sha256", "size_bytes", "stored"], "properties": {
                    "sha256": {"type": "string"}, "size_bytes": {"type": "integer"},
                    "stored": {"type": "string", "enum": ["new", "already"]}, "models": {"type": "object"}}},
            },
        },
        "paths": {
            "/v1/health": {"get": {
                "operationId": "health", "summary": "liveness and queue state", "security": [],
                "responses": {"200": {"description": "the agent is up", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status", "version", "queue"],
                    "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "queue": {"type": "object"},
                                   "models": {"type": "object", "description": "uploaded models held: count, bytes, capacity"}}}}}}},
            }},
            "/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "this document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
            "/v1/device": {"get": {
                "operationId": "device", "summary": "CPU, governor, memory, onnxruntime, energy meters",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "device facts", "content": {"application/json": {"schema": {"type": "object"}}}}, **auth_errors},
            }},
            "/v1/models/{sha256}": {"put": {
                "operationId": "upload_model", "summary": "upload a model's raw bytes once; later requests name it by sha256",
                "security": [{"bearer": []}],
                "parameters": [{"name": "sha256", "in": "path", "required": True, "schema": _SHA256}],
                "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "200": {"description": "the agent already held this model", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoredModel"}}}},
                    "201": {"description": "stored", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoredModel"}}}},
                    "400": _error("bad sha256 in the path, the body's sha256 differs, not ONNX, external data, non-standard domain"),
                    **auth_errors,
                    "408": _error("the body did not arrive within the agent's read timeout"),
                    "411": _error("Content-Length missing"),
                    "413": _error("the body is larger than the agent accepts or keeps"),
                    "415": _error("Content-Type is not application/octet-stream"),
                },
            }},
            "/v1/profile": {"post": {
                "operationId": "profile", "summary": "measure one ONNX model",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProfileRequest"}}}},
                "responses": {
                    "200": {"description": "the measurement", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProfileResult"}}}},
                    "400": _error("bad JSON, bad field, not ONNX, external data, non-standard domain, bad inputs"),
                    **auth_errors,
                    "404": _error("model_sha256 names a model this agent does not hold: upload it with PUT /v1/models/{sha256}"),
                    "408": _error("the body did not arrive within the agent's read timeout, or the measurement outlasted time_limit_s"),
                    "411": _error("Content-Length missing"),
                    "413": _error("the body is larger than the agent accepts"),
                    "415": _error("Content-Type is not application/json"),
                    "429": _error("the waiting line is full", retry_after=True),
                    "503": _error("time_limit_s passed while waiting for the measurement slot", retry_after=True),
                },
            }},
        },
    }
