"""A worker killed mid-trial on Optuna's journal storage (the real Redis): its trial is failed as stale and retried.

The same as ``test_workers.py``'s PostgreSQL case: SIGKILL the only worker mid-trial, run the
same command again, and nothing completed is lost or changed, the killed trial is failed and
retried with its parameters, and the study ends with exactly ``n_trials`` counted trials.
"""

from __future__ import annotations

import signal
import time

import optuna
import pytest
from test_workers import finish, start, tiny, write_study  # noqa: F401  (tiny: the module's fixture)

from autoprune.study.storage import open_storage
from autoprune.study.workers import counted

COMPLETE, RUNNING, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)
    except KeyError:
        return []


def test_a_killed_worker_s_trial_on_the_redis_journal_is_retried_and_nothing_is_lost(tmp_path, redis_db, tiny):
    study = write_study(tmp_path, tiny, "jkill", 10)
    worker = start(study, redis_db, tmp_path / "a")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trials = _trials(redis_db, "jkill")
        if any(t.state == RUNNING and t.number >= 4 for t in trials) and sum(t.state == COMPLETE for t in trials) >= 3:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker never got past its third trial")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    trials = _trials(redis_db, "jkill")
    before = {t.number: (t.values, t.user_attrs["sha256"]) for t in trials if t.state == COMPLETE}
    killed = [t.number for t in trials if t.state == RUNNING]
    assert len(killed) == 1

    finish([start(study, redis_db, tmp_path / "a")])  # the same command again resumes

    trials = _trials(redis_db, "jkill")
    after = {t.number: (t.values, t.user_attrs["sha256"]) for t in trials if t.state == COMPLETE}
    assert {n: after.get(n) for n in before} == before  # completed trials neither lost nor changed
    assert trials[killed[0]].state == FAIL
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0]]
    assert retry.state == COMPLETE and trials[killed[0]].params.items() <= retry.params.items()
    assert len(after) == 10 and len(counted(trials)) == 10
    assert not any(t.state == RUNNING for t in trials)
