"""The agent over real HTTP on 127.0.0.1: a measurement, and every kind of bad request."""

from __future__ import annotations

import socket
import time

import pytest

from agent_kit import Client, b64, make_model


def test_profile_ok_reports_every_number_with_its_source(client, tiny):
    status, _, r = client.profile(tiny, repetitions=30, warmup=3, input_shapes={"x": [4, 16]})
    assert status == 200
    lat = r["latency"]
    assert set(lat) == {"median_ms", "p90_ms", "min_ms", "mean_ms", "std_ms", "cv", "n"}
    assert lat["n"] >= 30 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert r["latency_ms"]["source"] == "measured" and r["latency_ms"]["value"] == lat["median_ms"]
    # no meter on this machine: no number, and the reason for each meter tried
    assert r["energy_mj"] is None and "rapl" in r["energy"]["reason"]
    assert r["peak_memory_mb"] > 0 and "peak RSS" in r["peak_memory_how"]
    assert r["settings"]["input_shapes"] == {"x": [4, 16]} and r["settings"]["threads"] == 1
    assert r["device"]["onnxruntime"] and r["device"]["cores"] >= 1
    t = r["timing"]
    assert t["received_at"] <= t["started_at"] < t["finished_at"]


def test_health_and_openapi_need_no_token_but_device_does(client):
    assert client.call("GET", "/v1/health", token=None)[0] == 200
    status, _, spec = client.call("GET", "/v1/openapi.json", token=None)
    assert status == 200 and spec["openapi"].startswith("3.") and "/v1/profile" in spec["paths"]
    status, headers, body = client.call("GET", "/v1/device", token=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, info = client.call("GET", "/v1/device")
    assert status == 200
    assert info["cpu"]["cores"] >= 1 and "governor" in info["cpu"] and info["memory"]["total_mb"] > 0
    assert "CPUExecutionProvider" in info["onnxruntime"]["execution_providers"]
    assert info["energy_meters"]["CPUExecutionProvider"]["meter"] is None  # and says why:
    assert "rapl" in info["energy_meters"]["CPUExecutionProvider"]["unavailable"]


@pytest.mark.parametrize("token", [None, "wrong", "s3cret-test-token-but-longer", ""])
def test_profile_refuses_missing_or_wrong_token(client, tiny, token):
    status, _, body = client.call("POST", "/v1/profile", {"model": b64(tiny)}, token=token)
    assert status == 401 and body["error"]["code"] == "unauthorized"


BAD_REQUESTS = [
    ({"model": ""}, "model", "empty"),
    ({"model": b64(b"this is not an onnx file at all")}, "model", "not an ONNX model"),
    ({"model": "%%% not base64 %%%"}, "model", "base64"),
    ({"model": b64(make_model(external=True))}, "model", "external data"),
    ({"model": b64(make_model(domain="com.evil.custom"))}, "model", "com.evil.custom"),
    ({"threads": 1}, "model", "required"),
    ({"model": b64(make_model()), "repetitions": 0}, "repetitions", "repetitions must be an integer"),
    ({"model": b64(make_model()), "warmup": "ten"}, "warmup", "warmup"),
    ({"model": b64(make_model()), "min_duration_s": 1e9}, "min_duration_s", "min_duration_s"),
    ({"model": b64(make_model()), "execution_provider": "MagicEP"}, "execution_provider", "CPUExecutionProvider"),
    ({"model": b64(make_model()), "input_shapes": {"nope": [1, 16]}}, "input_shapes.nope", "names no input"),
    ({"model": b64(make_model()), "input_shapes": {"x": [1, 15]}}, "input_shapes.x", "fixes it to 16"),
    ({"model": b64(make_model()), "input_shapes": {"x": [1, 16, 1]}}, "input_shapes.x", "rank"),
    ({"model": b64(make_model()), "input_shapes": {"x": [-1, 16]}}, "input_shapes.x", "integers"),
    ({"model": b64(make_model()), "input_shapes": {"x": [1 << 24, 16]}}, "input_shapes.x", "exceed"),
    ({"model": b64(make_model()), "colour": "red"}, "colour", "not a known field"),
    ({"model": b64(make_model()), "threads": 257}, "threads", "threads must be an integer"),
    ({"model": b64(make_model()), "threads": 256}, "threads", "this device's cores"),
]


@pytest.mark.parametrize("body,field,words", BAD_REQUESTS, ids=[f"{f}:{w}" for _, f, w in BAD_REQUESTS])
def test_bad_requests_get_400_naming_the_field(client, body, field, words):
    status, _, r = client.call("POST", "/v1/profile", body)
    assert status == 400, r
    assert r["error"]["field"] == field and words in r["error"]["message"]
    assert client.call("GET", "/v1/health")[0] == 200  # and the agent stays up


def test_garbage_that_parses_as_protobuf_gets_onnxruntimes_reason(client):
    # A ModelProto with ir_version and an empty graph passes the screen; onnxruntime says why it is no model.
    status, _, r = client.call("POST", "/v1/profile", {"model": b64(bytes([0x08, 0x08, 0x3A, 0x00]))})
    assert status == 400 and r["error"]["code"] == "invalid_model" and "onnxruntime" in r["error"]["message"]


def test_unsupported_input_dtype_is_400(client):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "g",
                          [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
                          [helper.make_tensor_value_info("t", TensorProto.STRING, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    status, _, r = client.call("POST", "/v1/profile", {"model": b64(m.SerializeToString())})
    assert status == 400 and r["error"]["code"] == "unsupported_input" and "tensor(string)" in r["error"]["message"]


def test_non_json_and_wrong_content_type(client, tiny):
    status, _, r = client.call("POST", "/v1/profile", raw=b"{not json")
    assert status == 400 and r["error"]["code"] == "invalid_json"
    status, _, r = client.call("POST", "/v1/profile", raw=tiny, headers={"Content-Type": "application/octet-stream"})
    assert status == 415
    status, _, r = client.call("POST", "/v1/profile", raw=b"[1, 2]")
    assert status == 400 and "JSON object" in r["error"]["message"]


def test_oversized_upload_is_413_before_it_is_read(client):
    big = make_model(dim=600)  # 600*600*4 bytes = 1.4 MB > the fixture's 1 MB limit
    status, _, r = client.profile(big)
    assert status == 413 and "at most" in r["error"]["message"]


def test_unknown_path_and_method(client):
    assert client.call("GET", "/v2/profile")[0] == 404
    status, headers, r = client.call("GET", "/v1/profile")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, r = client.call("DELETE", "/v1/health")
    assert status == 405 and r["error"]["code"] == "method_not_allowed"


def _raw_http(url: str, payload: bytes, pause_s: float = 0.0) -> bytes:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        time.sleep(pause_s)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_slow_upload_gets_408_json(agent):
    head = (b"POST /v1/profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer s3cret-test-token\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
    reply = _raw_http(agent.url, head)  # the rest never comes; the agent's read timeout is 1 s
    assert reply.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in reply
    assert Client(agent.url).call("GET", "/v1/health")[0] == 200


def test_missing_content_length_is_411_and_malformed_http_is_json(agent):
    reply = _raw_http(agent.url, b"POST /v1/profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Authorization: Bearer s3cret-test-token\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411")
    reply = _raw_http(agent.url, b"GET /v1/health HTTP/1.x\r\n\r\n")
    assert b'{"error": {"status": 400, "code": "bad_http"' in reply  # http.server answers HTTP/0.9 style here


def test_measurement_past_its_time_limit_is_408(client, tiny):
    t0 = time.monotonic()
    status, _, r = client.profile(tiny, repetitions=1, min_duration_s=30.0, time_limit_s=0.5)
    assert time.monotonic() - t0 < 10  # stopped at the limit, not after the 30 s asked for
    assert status == 408 and r["error"]["field"] == "time_limit_s"
    assert client.profile(tiny, repetitions=5)[0] == 200  # the slot was released


def test_non_loopback_without_token_is_refused():
    from autoprune.agent import AgentConfig
    from autoprune.exceptions import ConfigError

    with pytest.raises(ConfigError, match="without a token"):
        AgentConfig(host="0.0.0.0", port=0, token=None)
    AgentConfig(host="0.0.0.0", port=0, token="t")  # with a token it is allowed
    AgentConfig(host="127.0.0.1", port=0, token=None)  # loopback without a token is allowed
