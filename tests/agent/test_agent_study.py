"""A study whose agent is killed mid-study: that trial fails with the reason, the study goes on."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys

import optuna
import pytest

from autoprune.device import load_device_profile
from autoprune.profile import Profiler
from autoprune.profile.agent import AgentProfiler

pytestmark = pytest.mark.slow


def start_agent(token_file, port: int = 0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoprune", "agent", "serve", "--port", str(port), "--token-file", str(token_file), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return proc, line.split("listening on ")[1].split()[0]


class KillsAgentOnce(Profiler):
    """Test wrapper: before measurement number ``kill_at`` it SIGKILLs the agent process,
    and once that measurement has failed it starts a new agent on the same port."""

    def __init__(self, inner: AgentProfiler, proc: subprocess.Popen, token_file, kill_at: int) -> None:
        super().__init__(inner.device)
        self.inner, self.proc, self.token_file, self.kill_at = inner, proc, token_file, kill_at
        self.calls = 0

    def measure(self, model_path, inputs=None):
        self.calls += 1
        if self.calls == self.kill_at:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            try:
                return self.inner.measure(model_path, inputs)
            finally:
                port = int(self.inner.pool.urls[0].rsplit(":", 1)[1])
                self.proc, _ = start_agent(self.token_file, port)
        return self.inner.measure(model_path, inputs)

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


def test_agent_killed_mid_study_fails_one_trial_and_the_study_continues(tmp_path, tiny_config):
    from autoprune.config import StudyConfig
    from autoprune.study import run_study

    token = tmp_path / "token"
    token.write_text("study-token")
    proc, url = start_agent(token)
    board = tmp_path / "board.yaml"
    board.write_text(
        "version: 1\nname: killed-board\nprofiler: {kind: agent, threads: 1, warmup: 2, repetitions: 20}\n"
        "bits: [8, 32]\npower: {watts: 3.0, source: test}\n"
        f"agent: {{urls: [{url}], token_file: {token}, retries: 1, backoff_s: 0.05, timeout_s: 30}}\n"
    )
    cfg = copy.deepcopy(tiny_config.to_dict())  # tests/conftest.py: the shared tiny study
    cfg.update(name="killed", device=str(board))
    cfg["search"] = {**cfg["search"], "n_trials": 5, "baselines": []}
    config = StudyConfig.from_dict(cfg, "killed.yaml")
    profiler = KillsAgentOnce(AgentProfiler(load_device_profile(board)), proc, token, kill_at=3)
    try:
        result = run_study(config, tmp_path / "run", profiler=profiler, progress=False, log=lambda m: None)
    finally:
        profiler.close()
    trials = result.study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert len(trials) == 5  # every trial ran: the study did not stop at the failure
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "AgentUnreachableError" in failed[0].user_attrs["fail_reason"]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4  # before the kill and after the restart
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.values[1] > 0 for t in done)  # latency came back from the agent
