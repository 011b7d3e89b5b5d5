"""Heartbeats on Optuna's journal storage (the real Redis), and trials a worker gives up on."""

from __future__ import annotations

import os
import subprocess
import time
import warnings

import optuna
import pytest

from autoprune.study.liveness import BEAT_ATTR, INTERRUPTED, TrialWatch, _proc_stat, _this_process, retry_stale
from autoprune.study.storage import has_heartbeat, open_storage
from autoprune.study.workers import counted

RUNNING, FAIL, WAITING = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_the_journal_storage_beats_while_a_trial_runs(redis_db):
    _quiet()
    storage = open_storage(redis_db, heartbeat_s=1)
    assert has_heartbeat(storage)
    study = optuna.create_study(storage=storage)
    seen = {}

    def objective(trial: optuna.Trial) -> float:
        time.sleep(1.3)  # Optuna's own beating thread writes one beat at once and one a second later
        seen.update(storage.get_trial(trial._trial_id).system_attrs[BEAT_ATTR], trial_id_here=trial._trial_id)
        return 0.0

    t0 = time.time()
    study.optimize(objective, n_trials=1)
    assert seen["trial_id"] == seen["trial_id_here"] and seen["pid"] == os.getpid()
    assert seen["host"] == _this_process()["host"] and t0 + 0.9 < seen["at"] < time.time()


def _dead_process() -> dict:
    """The identity of a process of this machine that has ended (and been reaped)."""
    p = subprocess.Popen(["sleep", "30"])
    started = _proc_stat(p.pid)[19]
    p.kill()
    p.wait()
    return {"pid": p.pid, "started": started}


def test_stale_journal_trials_are_failed_and_retried_with_their_parameters(redis_db):
    _quiet()
    storage = open_storage(redis_db, heartbeat_s=1)  # grace period: 3 s
    study = optuna.create_study(storage=storage)
    warnings.simplefilter("ignore")  # ask() outside optimize() with heartbeats, fail_stale_trials: Optuna warns
    here, now = _this_process(), time.time()
    beats = {
        "other machine, 10 s ago": ({**here, "host": "elsewhere", "at": now - 10}, True),
        "other machine, just now": ({**here, "host": "elsewhere", "at": now}, False),
        "this machine, its process gone": ({**here, **_dead_process(), "at": now}, True),
        "this machine, its process alive": ({**here, "at": now}, False),
        "never beat": (None, False),
        "a beat copied from another trial": ({**here, "host": "elsewhere", "at": now - 10, "trial_id": -1}, False),
    }
    trials = {}
    for label, (beat, _) in beats.items():
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        if beat is not None:
            storage.set_trial_system_attr(trial._trial_id, BEAT_ATTR, {"trial_id": trial._trial_id, **beat})
        trials[label] = trial.number

    optuna.storages.fail_stale_trials(study)

    after = study.get_trials(deepcopy=False)
    for label, (_, stale) in beats.items():
        assert after[trials[label]].state == (FAIL if stale else RUNNING), label
    retries = {t.system_attrs["failed_trial"]: t for t in after if "failed_trial" in t.system_attrs}
    assert sorted(retries) == sorted(trials[label] for label, (_, stale) in beats.items() if stale)
    for number, retry in retries.items():
        assert retry.state == WAITING and retry.params == after[number].params
        assert retry.system_attrs["retry_history"] == [number] and BEAT_ATTR not in retry.system_attrs
    assert len(counted(after)) == len(beats)  # a retry takes its stale trial's place in the budget


def test_a_trial_cut_short_is_failed_with_the_reason_and_queued_again():
    _quiet()
    study = optuna.create_study()

    def interrupted(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("fail_reason", "left over from an earlier attempt")
        raise KeyboardInterrupt

    watch = TrialWatch(interrupted, retry_stale(3))
    with pytest.raises(KeyboardInterrupt):
        study.optimize(watch, n_trials=1)
    assert watch.give_up(study, INTERRUPTED) == 0
    first, retry = study.get_trials(deepcopy=False)
    assert first.state == FAIL and first.user_attrs["fail_reason"] == INTERRUPTED
    assert retry.state == WAITING and retry.params == first.params and retry.system_attrs["retry_history"] == [0]
    assert "fail_reason" not in retry.user_attrs  # the retry starts clean
    assert watch.give_up(study, INTERRUPTED) is None  # given up once


def test_a_trial_whose_tell_never_reached_the_storage_is_failed_here():
    _quiet()
    study = optuna.create_study()
    running = study.ask()  # as Optuna leaves it when the storage went away before its tell
    running.suggest_float("x", 0.0, 1.0)
    watch = TrialWatch(lambda t: 0.0, retry_stale(3))
    watch.trial_id = running._trial_id
    assert watch.give_up(study, "the storage stopped answering") == 0
    first, retry = study.get_trials(deepcopy=False)
    assert first.state == FAIL and first.user_attrs["fail_reason"] == "the storage stopped answering"
    assert retry.state == WAITING and retry.params == first.params and retry.system_attrs["retry_history"] == [0]


class _StorageGoneWhileAsking(optuna.samplers.RandomSampler):
    """A sampler whose ``before_trial`` meets the storage gone: the moment in ``ask`` after the trial is RUNNING, before it beats."""

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        raise ConnectionError("the storage went away")


@pytest.mark.parametrize("db", ["redis_db", "postgres_db"])
def test_a_trial_cut_off_while_optuna_asked_for_it_is_failed_and_queued_again(db, request):
    """Such a trial never beats, so no worker would find it stale: the study would wait on it for ever."""
    _quiet()
    storage = open_storage(request.getfixturevalue(db), heartbeat_s=1)
    study = optuna.create_study(storage=storage, sampler=_StorageGoneWhileAsking())
    watch = TrialWatch(lambda t: t.suggest_float("x", 0.0, 1.0), retry_stale(3))
    for _ in range(2):  # a new trial, then its retry taken from the queue
        with pytest.raises(ConnectionError):
            study.optimize(watch, n_trials=1)
        [orphan] = study.get_trials(deepcopy=False, states=(RUNNING,))
        assert BEAT_ATTR not in orphan.system_attrs
        if db == "postgres_db":
            assert orphan._trial_id not in storage._get_stale_trial_ids(study._study_id)  # never stale
        assert watch.give_up(study, "the storage stopped answering") == orphan.number
        assert study.get_trials(deepcopy=False)[orphan.number].user_attrs["fail_reason"] == "the storage stopped answering"
        assert watch.give_up(study, "the storage stopped answering") is None  # given up once
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [FAIL, FAIL, WAITING] and not trials[0].params  # it had drawn nothing
    assert trials[2].system_attrs["retry_history"] == [0, 1] and len(counted(trials)) == 1

    study.sampler = optuna.samplers.RandomSampler()  # the storage is back
    study.optimize(watch, n_trials=1)
    watch.ended(study)
    assert watch.give_up(study, "the storage stopped answering") is None  # a trial that ended is not given up
    assert [t.state for t in counted(study.get_trials(deepcopy=False))] == [optuna.trial.TrialState.COMPLETE]


def test_a_trial_that_failed_on_its_own_is_not_queued_again():
    _quiet()
    study = optuna.create_study()

    def broken(trial: optuna.Trial) -> float:
        raise ValueError("a candidate's own failure")

    watch = TrialWatch(broken, retry_stale(3))
    study.optimize(watch, n_trials=1, catch=(ValueError,))
    assert watch.give_up(study, INTERRUPTED) is None
    assert [t.state for t in study.trials] == [FAIL]
