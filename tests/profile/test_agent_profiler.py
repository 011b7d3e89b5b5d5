"""The agent client against real agents on 127.0.0.1: results, pool, failover, a killed agent."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autoprune.agent import AgentConfig, AgentServer
from autoprune.device import load_device_profile
from autoprune.meters import detect_meter
from autoprune.exceptions import AgentUnreachableError, ConfigError, ProfilerError
from autoprune.profile import make_profiler
from autoprune.profile.agent import AgentPool, AgentProfiler

TOKEN = "client-test-token"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    w = numpy_helper.from_array(np.full((32, 32), 0.01, np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = tmp_path_factory.mktemp("m") / "tiny.onnx"
    onnx.save(m, p)
    return p


@pytest.fixture
def token_file(tmp_path) -> Path:
    p = tmp_path / "token"
    p.write_text(TOKEN + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def agents():
    started = []

    def start(n=1, **kw):
        for _ in range(n):
            started.append(AgentServer(AgentConfig(port=0, token=TOKEN, **kw)).start())
        return started[-n:]

    yield start
    for s in started:
        s.shutdown()


def profile_yaml(tmp_path, urls, token_file=None, token_env=None, retries=1, backoff=0.05, watts=5.0) -> Path:
    lines = [
        "version: 1", "name: test-board", "profiler:", "  kind: agent", "  threads: 1", "  warmup: 2",
        "  repetitions: 20", "bits: [8, 32]", "power:", f"  watts: {watts}", "  source: test figure", "agent:",
        "  urls: [" + ", ".join(urls) + "]", f"  retries: {retries}", f"  backoff_s: {backoff}", "  timeout_s: 20",
    ]
    if token_file:
        lines.append(f"  token_file: {token_file}")
    if token_env:
        lines.append(f"  token_env: {token_env}")
    p = tmp_path / "board.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def free_url() -> str:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_measure_through_the_agent(agents, model_path, token_file, tmp_path):
    (agent,) = agents()
    device = load_device_profile(profile_yaml(tmp_path, [agent.url], token_file=token_file))
    profiler = make_profiler(device)
    assert isinstance(profiler, AgentProfiler)
    m = profiler.measure(model_path, inputs={"x": np.zeros((3, 32), np.float32)})
    assert m.latency_ms.source == "measured" and agent.url in m.latency_ms.how
    assert m.latency["n"] >= 20 and m.latency["median_ms"] == m.latency_ms.value
    assert m.settings["profiler"] == "agent" and m.settings["input_shapes"] == {"x": [3, 32]}
    if detect_meter().meter is not None:  # the agent runs here, so it reads this host's meter if there is one
        assert m.energy_mj.source == "measured"
    else:  # no meter: energy is the device profile's estimate, labelled and explained
        assert m.energy_mj.source == "estimated" and "agent has no meter" in m.energy_mj.how
        assert m.energy_mj.value == pytest.approx(5.0 * m.latency_ms.value)
    assert m.peak_memory_mb > 0 and m.device["url"] == agent.url
    again = type(m).from_dict(m.to_dict())
    assert again == m


def test_token_from_env_and_wrong_token(agents, model_path, tmp_path, monkeypatch):
    (agent,) = agents()
    monkeypatch.setenv("BOARD_TOKEN", TOKEN)
    device = load_device_profile(profile_yaml(tmp_path, [agent.url], token_env="BOARD_TOKEN"))
    assert AgentProfiler(device).measure(model_path).latency["n"] >= 20
    monkeypatch.setenv("BOARD_TOKEN", "nope")
    with pytest.raises(ConfigError, match="rejected the agent token.*BOARD_TOKEN"):
        AgentProfiler(device).measure(model_path)
    monkeypatch.delenv("BOARD_TOKEN")
    with pytest.raises(ConfigError, match="BOARD_TOKEN is not set"):
        AgentProfiler(device).measure(model_path)


def test_bad_model_is_a_profiler_error_not_unreachable(agents, tmp_path, token_file):
    (agent,) = agents()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    profiler = AgentProfiler(load_device_profile(profile_yaml(tmp_path, [agent.url], token_file=token_file)))
    with pytest.raises(ProfilerError, match="400: not an ONNX model") as e:
        profiler.measure(bad)
    assert not isinstance(e.value, AgentUnreachableError)


def test_pool_spreads_requests_and_fails_over(agents, model_path, token_file, tmp_path):
    a, b = agents(2)
    dead = free_url()
    device = load_device_profile(profile_yaml(tmp_path, [dead, a.url, b.url], token_file=token_file))
    profiler = AgentProfiler(device)
    used = [profiler.measure(model_path).device["url"] for _ in range(4)]
    assert set(used) == {a.url, b.url}  # the dead one is skipped, the live ones share the work
    assert dead not in used


def test_pool_prefers_the_least_busy_url():
    pool = AgentPool(["http://a", "http://b", "http://c"])
    first, second, third = pool.acquire(), pool.acquire(), pool.acquire()
    assert {first, second, third} == {"http://a", "http://b", "http://c"}
    pool.release("http://b")
    assert pool.acquire() == "http://b"  # the only one with nothing in flight
    pool.release("http://a", failed=True)
    pool.release("http://c")
    assert pool.acquire() == "http://c"  # a failed recently, so it rests
    assert pool.acquire({"http://a", "http://b", "http://c"}) is None


def start_agent_process(token_file: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoprune", "agent", "serve", "--port", "0", "--token-file", str(token_file), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert "listening on" in line, proc.stderr.read() if proc.poll() is not None else line
    return proc, line.split("listening on ")[1].split()[0]


def test_agent_killed_between_two_measurements_is_unreachable_after_retries(model_path, token_file, tmp_path):
    proc, url = start_agent_process(token_file)
    try:
        device = load_device_profile(profile_yaml(tmp_path, [url], token_file=token_file, retries=2, backoff=0.1))
        profiler = make_profiler(device)
        assert profiler.measure(model_path).latency["n"] >= 20
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t0 = time.monotonic()
        with pytest.raises(AgentUnreachableError, match="no agent answered after 3 round") as e:
            profiler.measure(model_path)
        assert url in str(e.value) and "refused" in str(e.value).lower()
        assert time.monotonic() - t0 >= 0.1 + 0.2  # it backed off between the rounds
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def _requests(caplog, what: str) -> int:
    return sum(what in r.getMessage() for r in caplog.records if r.name == "autoprune.agent")


def test_model_is_uploaded_once_and_then_named_by_hash(agents, model_path, token_file, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="autoprune.agent")
    (agent,) = agents()
    device = load_device_profile(profile_yaml(tmp_path, [agent.url], token_file=token_file))
    profiler = AgentProfiler(device)
    first, second = profiler.measure(model_path), profiler.measure(model_path)
    assert first.settings["model_sha256"] == second.settings["model_sha256"] == profiler.model_sha256(model_path)
    assert _requests(caplog, '"PUT /v1/models/') == 1  # the 404 on the first request caused the only upload
    assert _requests(caplog, '"POST /v1/profile') == 3  # by hash (404), after the upload, by hash again
    assert not first.device["session"]["reused"] and second.device["session"]["reused"]  # the agent kept the session
    AgentProfiler(device).measure(model_path)  # another client (a resumed study): the agent still holds it
    assert _requests(caplog, '"PUT /v1/models/') == 1


def test_a_changed_file_is_hashed_and_uploaded_again(agents, token_file, tmp_path, model_path, caplog):
    caplog.set_level(logging.INFO, logger="autoprune.agent")
    (agent,) = agents()
    profiler = AgentProfiler(load_device_profile(profile_yaml(tmp_path, [agent.url], token_file=token_file)))
    path = tmp_path / "m.onnx"
    path.write_bytes(model_path.read_bytes())
    before = profiler.measure(path).settings["model_sha256"]
    m = onnx.load(path)
    m.graph.initializer[0].raw_data = np.full((32, 32), 0.02, np.float32).tobytes()
    onnx.save(m, path)
    after = profiler.measure(path).settings["model_sha256"]
    assert before != after and _requests(caplog, '"PUT /v1/models/') == 2


def test_an_agent_without_uploads_gets_the_model_inline(agents, model_path, token_file, tmp_path, monkeypatch, caplog):
    """A fake of an older agent: its request parser does not know model_sha256."""
    import autoprune.agent.server as server
    from autoprune.agent import ApiError

    real = server.parse_profile_request

    def old_parser(body, *a, **k):
        if isinstance(body, dict) and "model_sha256" in body:
            raise ApiError(400, "invalid_request", "model_sha256 is not a known field (known: [...])", field="model_sha256")
        return real(body, *a, **k)

    monkeypatch.setattr(server, "parse_profile_request", old_parser)
    caplog.set_level(logging.INFO, logger="autoprune.agent")
    (agent,) = agents()
    profiler = AgentProfiler(load_device_profile(profile_yaml(tmp_path, [agent.url], token_file=token_file)))
    assert profiler.measure(model_path).latency["n"] >= 20
    assert profiler.measure(model_path).latency["n"] >= 20
    assert _requests(caplog, '"PUT /v1/models/') == 0
    assert _requests(caplog, '"POST /v1/profile') == 3  # by hash once (400), then inline twice
