"""Many workers on one study over the real PostgreSQL (RDB) and Redis (journal) storages.

Workers are separate ``autoprune run`` processes, as on separate machines. The tiny study of
``tests/conftest.py`` runs with a fast local device profile (few timed runs, no minimum
window) so that 30 trials take seconds; everything else is real.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from autoprune.study.claims import SEP
from autoprune.study.records import CONFIRMATION_ATTR
from autoprune.study.storage import open_storage
from autoprune.study.workers import OVER_BUDGET, counted

ROOT = Path(__file__).resolve().parents[2]
FAST_CPU = {  # named so: the tiny study's trials are timed on few runs, for speed
    "version": 1, "name": "fast-test-cpu", "description": "local CPU, few timed runs (tests only)",
    "profiler": {"kind": "local", "threads": 1, "warmup": 2, "repetitions": 20, "min_duration_s": 0.0},
    "bits": [8, 32], "power": {"watts": 15.0, "source": "assumed (tests)"},
}


@pytest.fixture(scope="module")
def tiny(tiny_config, model_cache):
    """The tiny study as a dict, its base model trained once before any worker process needs it."""
    from autoprune import tasks

    tasks.get(tiny_config.task, **tiny_config.task_options).model()
    return tiny_config.to_dict()


def write_study(tmp_path: Path, tiny: dict, name: str, n_trials: int) -> Path:
    (tmp_path / "fast-test-cpu.yaml").write_text(yaml.safe_dump(FAST_CPU))
    cfg = copy.deepcopy(tiny)
    cfg.update(name=name, device=str(tmp_path / "fast-test-cpu.yaml"))
    cfg["confirm"].update(rounds=2, min_duration_s=0.0)
    cfg["search"]["n_trials"] = n_trials
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(study: Path, url: str, out: Path, *extra: str) -> subprocess.Popen:
    # Beats every 2 s (stale after 6 s): short for a test, long enough that a worker starved of CPU on a
    # busy 2-core host still beats in time (with 1 s, a claim went stale under load and was taken over).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "autoprune", "run", str(study), "--storage", url, "--quiet", "--heartbeat", "2", "--out", str(out), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    logs = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        logs.append(err)
    return logs


def check_study(url: str, name: str, n_trials: int, log: str) -> optuna.Study:
    """Exactly ``n_trials`` complete trials, each baseline once, one preparation, one confirmation pass."""
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = study.get_trials(deepcopy=False)
    live = counted(trials)
    assert len(live) == n_trials and all(t.state == optuna.trial.TrialState.COMPLETE for t in live)
    assert all(t.user_attrs.get(OVER_BUDGET) for t in trials if t not in live)  # a race's extra trial, turned away
    assert sorted(t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs) == sorted(["dense-fp32", "dense-int8", "uniform-0.5"])
    claims = sorted(n.split(SEP, 1)[1] for n in optuna.get_all_study_names(open_storage(url)) if n.startswith(name + SEP))
    confirms = [c for c in claims if c.startswith("confirm-")]
    assert len(confirms) == 1 and confirms[0].startswith(f"confirm-{n_trials}-")  # no takeover, no second pass
    assert sorted(set(claims) - set(confirms)) == ["enqueue", "prepare", "worker-0", "worker-1", "worker-2"]
    assert log.count("preparing the study: by this worker") == 1  # the dense reference: once
    assert log.count("enqueuing baselines and seeds: by this worker") == 1
    assert log.count("re-measured in") == 1  # one confirmation pass, by one worker
    assert study.user_attrs[CONFIRMATION_ATTR]["n_complete"] == n_trials
    assert "accuracy" in study.user_attrs["dense"]
    return study


def test_three_worker_processes_share_one_budget_on_postgres(tmp_path, postgres_db, tiny):
    study = write_study(tmp_path, tiny, "pg3", 30)
    procs = [start(study, postgres_db, tmp_path / f"w{i}") for i in range(3)]
    logs = finish(procs)
    check_study(postgres_db, "pg3", 30, "".join(logs))
    assert sorted(int(re.search(r"worker (\d+) \(", log).group(1)) for log in logs) == [0, 1, 2]  # three sampler seeds


def test_workers_option_on_the_redis_journal(tmp_path, redis_db, tiny):
    study = write_study(tmp_path, tiny, "rd3", 30)
    [log] = finish([start(study, redis_db, tmp_path / "run", "--workers", "3")])
    check_study(redis_db, "rd3", 30, log)
    front = json.loads((tmp_path / "run" / "front.json").read_text())  # written after every worker ended
    assert front["n_complete"] == 30 and front["confirmation"]["complete"] is True
    assert (tmp_path / "run" / "workers" / "2" / "trials.csv").is_file()


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)
    except KeyError:
        return []


@pytest.mark.parametrize("storage", ["postgres_db", "redis_db"])
def test_a_killed_worker_s_trial_is_retried_and_nothing_is_lost(tmp_path, storage, request, tiny):
    """SIGKILL the only worker mid-trial (PostgreSQL, or Optuna's journal on the real Redis), run the same command
    again: nothing completed is lost or changed, the killed trial is failed as stale and retried with its
    parameters, and the study ends with exactly ``n_trials`` counted trials."""
    COMPLETE, RUNNING, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL
    url = request.getfixturevalue(storage)
    study = write_study(tmp_path, tiny, "kill", 10)
    worker = start(study, url, tmp_path / "a")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = _trials(url, "kill")
        if any(t.state == RUNNING and t.number >= 4 for t in trials) and sum(t.state == COMPLETE for t in trials) >= 3:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker never got past its third trial")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    trials = _trials(url, "kill")
    before = {t.number: (t.values, t.user_attrs["sha256"]) for t in trials if t.state == COMPLETE}
    killed = [t.number for t in trials if t.state == RUNNING]
    assert len(killed) == 1

    finish([start(study, url, tmp_path / "a")])  # the same command again resumes

    trials = _trials(url, "kill")
    after = {t.number: (t.values, t.user_attrs["sha256"]) for t in trials if t.state == COMPLETE}
    assert {n: after.get(n) for n in before} == before  # completed trials neither lost nor changed
    assert trials[killed[0]].state == FAIL
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0]]
    # the retry keeps the parameters the killed trial had drawn (all, or those before the kill)
    assert retry.state == COMPLETE and trials[killed[0]].params.items() <= retry.params.items()
    assert len(after) == 10 and len(counted(trials)) == 10
    assert not any(t.state == RUNNING for t in trials)


def test_a_worker_with_another_base_model_is_refused(tmp_path, tiny, model_cache, monkeypatch, capsys):
    import torch

    from autoprune.cli import main

    study = write_study(tmp_path, tiny, "fp", 1)
    out = tmp_path / "run"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--json"]) == 0
    other = tmp_path / "other-cache"
    other.mkdir()
    for f in Path(model_cache).glob("digits-*.pt"):  # the same task, other weights
        state = torch.load(f, weights_only=True)
        first = next(iter(state))
        state[first] = state[first] + 0.01
        torch.save(state, other / f.name)
    monkeypatch.setenv("AUTOPRUNE_CACHE", str(other))
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out), "--quiet", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "base model" in err and "is not the study's" in err and str(study) in err


def test_a_worker_on_a_cpu_of_another_vector_width_is_refused(tmp_path, tiny, model_cache, monkeypatch, capsys):
    """Two VMs can both call their CPU "AMD EPYC", one with AVX2 and one with AVX-512: onnxruntime times them
    differently, so a local-profiler study refuses a worker from the other."""
    from autoprune.cli import main
    from autoprune.study import runner
    from autoprune.study.context import cpu_facts

    study = write_study(tmp_path, tiny, "fp", 1)
    out = tmp_path / "run"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--json"]) == 0
    here = cpu_facts()
    other = "avx2" if here["vector_isa"] != "avx2" else "avx512"
    monkeypatch.setattr(runner, "cpu_facts", lambda: {**here, "vector_isa": other})
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out), "--quiet", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"this machine's CPU ({here['cpu']}, {other}) is not the study's" in err and str(study) in err
