"""The command line as a user runs it: a real subprocess, exit codes, one-line errors, --json."""

from __future__ import annotations

import json
import shlex
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def autoprune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autoprune", *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, env=os.environ.copy(), timeout=600)


@pytest.mark.parametrize("cmd", [[], ["run"], ["export"], ["apply"]])
def test_help_everywhere(cmd):
    r = autoprune(*cmd, "--help")
    assert r.returncode == 0 and "usage: autoprune" in r.stdout


@pytest.fixture
def tiny(tiny_config) -> dict:
    return tiny_config.to_dict()


def write_study(tmp_path, base: dict, **changes) -> Path:
    data = {**base, **changes}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"search": {"max_ratio": 2}}, "study.yaml: search.max_ratio must be a number"),
        ({"bogus": 1}, "study.yaml: unknown key bogus"),
        ({"device": "pdp-11"}, "unknown device profile 'pdp-11'"),
        ({"task": "nope"}, "unknown task 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, tiny, changes, message):
    out = tmp_path / "run"
    r = autoprune("run", write_study(tmp_path, tiny, **changes), "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("autoprune run: error:")
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["profile", "m.onnx", "--device", "local-cpu", "--rounds", "0"], "argument --rounds: must be a whole number >= 1, got '0'"),
        (["profile", "m.onnx", "--device", "local-cpu", "--window", "inf"], "argument --window: must be a number of seconds > 0, got 'inf'"),
        (["export", "run", "--trial", "1", "--finetune", "1.5"], "argument --finetune: must be a whole number of epochs >= 1, got '1.5'"),
        (["export", "run", "--trial", "1", "--lr", "-1"], "argument --lr: must be a number > 0, got '-1'"),
    ],
)
def test_a_bad_flag_value_is_one_line_naming_the_flag(tmp_path, args, message):
    r = autoprune(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == f"autoprune {args[0]}: error: {message}"


def test_missing_and_malformed_files(tmp_path):
    r = autoprune("run", tmp_path / "absent.yaml")
    assert r.returncode == 2 and "absent.yaml: study config not found" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    r = autoprune("run", bad)
    assert r.returncode == 2 and "bad.yaml: not valid YAML" in r.stderr
    r = autoprune("apply", tmp_path / "absent-plan.yaml")
    assert r.returncode == 2 and "absent-plan.yaml: plan not found" in r.stderr


def test_run_json_then_export_and_apply(tmp_path, tiny):
    out = tmp_path / "run"
    r = autoprune("run", write_study(tmp_path, tiny, name="cli", search={**tiny["search"], "n_trials": 4}), "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    front = json.loads(r.stdout)
    assert front["n_trials"] == 4 and front["points"]
    number = front["points"][0]["number"]
    assert front["points"][0]["confirmed"]  # the tiny study confirms its front (3 rounds)
    r = autoprune("export", out, "--trial", number, "--out", tmp_path / "exp", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["trial"] == number and json.loads(r.stdout)["confirmed"] is True
    r = autoprune("export", out, "--trial", number, "--out", tmp_path / "exp-text")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert "ms (measured, confirmed)" in lines["latency_ms"] and lines["accuracy"].endswith("(measured)")
    r = autoprune("apply", tmp_path / "exp" / "plan.yaml", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0 and "identical to the plan's recorded artifact" in r.stdout
    r = autoprune("export", out, "--trial", 77)
    assert r.returncode == 2 and "--trial 77" in r.stderr


def test_the_suggested_pick_uses_the_study_cost_and_works(tmp_path, tiny):
    out = tmp_path / "run"
    study = write_study(tmp_path, tiny, name="sized", objectives=["accuracy", "size_kb"], search={**tiny["search"], "n_trials": 4})
    r = autoprune("run", study, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("export one:"))
    command = shlex.split(line.split(":", 1)[1])
    assert command[:3] == ["autoprune", "export", str(out)] and "where size_kb <=" in command[-1]
    r = autoprune(*command[1:], "--out", tmp_path / "picked")
    assert r.returncode == 0, r.stderr
    assert "size_kb" in r.stdout and (tmp_path / "picked" / "model.onnx").is_file()
