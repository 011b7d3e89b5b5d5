"""``autoprune profile``: local and agent device profiles, text and JSON, errors as one line."""

from __future__ import annotations

import json
import socket

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autoprune.agent import AgentConfig, AgentServer
from autoprune.cli import main
from autoprune.meters import detect_meter


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    w = numpy_helper.from_array(np.full((8, 8), 0.1, np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = tmp_path_factory.mktemp("cli") / "m.onnx"
    onnx.save(m, p)
    return str(p)


def write_profile(tmp_path, kind: str, url: str = "", token_file: str = "") -> str:
    text = f"""version: 1
name: cli-{kind}
profiler: {{kind: {kind}, threads: 1, warmup: 2, repetitions: 25}}
bits: [8, 32]
power: {{watts: 4.0, source: test figure}}
"""
    if kind == "agent":
        text += f"agent: {{urls: [{url}], token_file: {token_file}, retries: 1, backoff_s: 0.01, timeout_s: 20}}\n"
    p = tmp_path / f"{kind}.yaml"
    p.write_text(text)
    return str(p)


def test_local_profile_prints_every_number_with_its_source(model, tmp_path, capsys):
    assert main(["profile", model, "--device", write_profile(tmp_path, "local")]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    for key in ("latency median", "latency p90", "latency mean", "latency std"):
        assert "ms (measured:" in lines[key]
    if detect_meter().meter is not None:  # this host has a readable meter
        assert "mJ per inference (measured:" in lines["energy"]
    else:
        assert "mJ per inference (estimated:" in lines["energy"] and "4 W" in lines["energy"]
    assert "MB (measured:" in lines["peak memory"]


def test_agent_profile_json(model, tmp_path, capsys):
    token = tmp_path / "tok"
    token.write_text("cli-token")
    agent = AgentServer(AgentConfig(port=0, token="cli-token")).start()
    url = agent.url
    try:
        assert main(["profile", model, "--device", write_profile(tmp_path, "agent", url, str(token)), "--json"]) == 0
    finally:
        agent.shutdown()
    d = json.loads(capsys.readouterr().out)
    assert d["settings"]["profiler"] == "agent" and d["settings"]["url"] == url
    assert d["latency_ms"]["source"] == "measured" and d["latency"]["n"] >= 25
    if detect_meter().meter is not None:  # the agent runs on this host and reads its meter
        assert d["energy_mj"]["source"] == "measured"
    else:
        assert d["energy_mj"]["source"] == "estimated" and "agent has no meter" in d["energy_mj"]["how"]


def test_errors_are_one_line_with_an_exit_code(model, tmp_path, capsys):
    assert main(["profile", str(tmp_path / "missing.onnx"), "--device", write_profile(tmp_path, "local")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.onnx: file not found" in err
    token = tmp_path / "tok"
    token.write_text("x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main(["profile", model, "--device", write_profile(tmp_path, "agent", dead, str(token))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no agent answered" in err


def test_rounds_report_the_confirmation_protocol(model, tmp_path, capsys):
    assert main(["profile", model, "--device", write_profile(tmp_path, "local"), "--rounds", "3", "--window", "0.05", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    medians = d["rounds"]["round_medians_ms"]
    assert len(medians) == 3 and d["settings"]["min_duration_s"] == 0.05
    lat = d["rounds"]["latency_ms"]
    assert lat["source"] == "measured" and "10%-trimmed mean of 3 round medians" in lat["how"] and ">= 0.05-s window" in lat["how"]
    assert lat["value"] == pytest.approx(sum(medians) / 3, rel=1e-4)  # under 10 rounds nothing is trimmed
    assert main(["profile", model, "--device", write_profile(tmp_path, "local"), "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "(last of 2 rounds" in out and out.splitlines()[-1].startswith("latency (rounds)") and "ms (measured: 10%-trimmed mean" in out


def test_rounds_through_the_agent(model, tmp_path, capsys):
    token = tmp_path / "tok"
    token.write_text("cli-token")
    agent = AgentServer(AgentConfig(port=0, token="cli-token")).start()
    try:
        assert main(["profile", model, "--device", write_profile(tmp_path, "agent", agent.url, str(token)),
                     "--rounds", "2", "--window", "0.05", "--json"]) == 0
    finally:
        agent.shutdown()
    d = json.loads(capsys.readouterr().out)
    assert d["settings"]["profiler"] == "agent" and d["settings"]["min_duration_s"] == 0.05
    assert len(d["rounds"]["round_medians_ms"]) == 2


@pytest.mark.parametrize("flag, value", [("--rounds", "0"), ("--rounds", "two"), ("--window", "-1")])
def test_bad_rounds_or_window_exit_2(model, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main(["profile", model, "--device", write_profile(tmp_path, "local"), flag, value])
    assert e.value.code == 2 and f"argument {flag}: must be" in capsys.readouterr().err
