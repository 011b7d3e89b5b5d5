"""Schemathesis fuzzes the agent's OpenAPI description against a real agent: no 5xx, no contract break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")


def test_schemathesis_finds_no_server_error(agent_factory):
    # A short time cap keeps any valid-but-long measurement the fuzzer builds to 2 s.
    agent = agent_factory(max_time_limit_s=2.0, read_timeout_s=2.0)
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(exe), "run", f"{agent.url}/v1/openapi.json",
        "-H", "Authorization: Bearer s3cret-test-token",
        "--max-examples", "25", "--seed", "1", "--no-color", "--workers", "1",
        # "valid per schema" cannot mean "a valid ONNX model": random base64 is rightly refused.
        "--exclude-checks", "positive_data_acceptance",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-4000:]
    assert "Server error" not in report and "passed" in report
