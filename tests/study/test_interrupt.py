"""Ctrl-C (SIGINT) stops ``autoprune run`` gracefully: the running trial failed as interrupted and queued again,
the outputs whole and matching the storage, exit code 130 with one line; rerunning ends the study."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import optuna
import pytest
import yaml
from test_workers import FAST_CPU, ROOT, finish, tiny, write_study  # noqa: F401  (tiny: the module's fixture)

from autoprune.study.liveness import INTERRUPTED
from autoprune.study.workers import counted

COMPLETE, RUNNING, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL


def _run(study, out) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # SIGINT as a terminal leaves it, whatever this suite inherited: a shell running it in the background (`&`)
    # ignores SIGINT, a child keeps that, and Python then installs no KeyboardInterrupt handler at all
    return subprocess.Popen([sys.executable, "-m", "autoprune", "run", str(study), "--out", str(out), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _trials(out) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="intr", storage=f"sqlite:///{out / 'study.db'}").get_trials(deepcopy=False)
    except Exception:  # not created yet, or SQLite busy with the worker's write
        return []


def test_ctrl_c_fails_the_running_trial_as_interrupted_keeps_outputs_whole_and_exits_130(tmp_path, tiny):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study, out = write_study(tmp_path, tiny, "intr", 8), tmp_path / "run"
    # each search measurement lasts >= 1 s, so a trial running for 0.3 s is still timing when SIGINT lands
    slow = {**FAST_CPU, "profiler": {**FAST_CPU["profiler"], "min_duration_s": 1.0}}
    (tmp_path / "fast-test-cpu.yaml").write_text(yaml.safe_dump(slow))
    worker = _run(study, out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = _trials(out)
        started = datetime.now() - timedelta(seconds=0.3)
        if any(t.state == RUNNING and t.number >= 3 and t.datetime_start < started for t in trials):
            break
        time.sleep(0.02)
    else:
        pytest.fail("the worker never got past its second trial")
    worker.send_signal(signal.SIGINT)
    _, err = worker.communicate(timeout=60)

    assert worker.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("autoprune run: interrupted: study intr: trial ") and "rerun the same command to resume" in last
    number = int(last.split("trial ")[1].split()[0])
    trials = _trials(out)
    cut = trials[number]
    assert cut.state == FAIL and cut.user_attrs["fail_reason"] == INTERRUPTED
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert cut.params.items() <= retry.params.items() and "fail_reason" not in retry.user_attrs
    assert not any(t.state == RUNNING for t in trials)
    # the outputs: whole files that list what the storage holds, no temporary file left behind
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in trials]
    assert next(r for r in rows if int(r["number"]) == number)["fail_reason"] == INTERRUPTED
    front = json.loads((out / "front.json").read_text())
    assert front["n_complete"] == sum(t.state == COMPLETE for t in trials)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    finish([_run(study, out)])  # the same command again ends the study

    trials = _trials(out)
    assert len(counted(trials)) == 8 and all(t.state == COMPLETE for t in counted(trials))
    assert [t.system_attrs.get("failed_trial") for t in counted(trials)].count(number) == 1
