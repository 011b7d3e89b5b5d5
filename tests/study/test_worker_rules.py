"""The rules workers share a study by: the study-wide budget, joining checks, the measure lock, storage errors."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from autoprune.exceptions import StorageError, StudyMismatchError
from autoprune.study.storage import open_storage
from autoprune.study.workers import OVER_BUDGET, TrialBudget, check_joining, counted, measure_lock, measure_lock_path

COMPLETE, RUNNING, WAITING, FAIL = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                                    optuna.trial.TrialState.WAITING, optuna.trial.TrialState.FAIL)


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study()


def test_racing_workers_never_run_more_trials_than_the_budget():
    study, budget = _study(), TrialBudget(3)
    trials = [study.ask() for _ in range(4)]  # four workers asked at once for the last three places
    assert budget.next_step(study) == "wait"
    assert [budget.admits(study, t.number) for t in trials] == [True, True, True, False]
    with pytest.raises(optuna.TrialPruned):
        budget.guard(lambda t: pytest.fail("an over-budget trial must not run"))(trials[3])
    study.tell(trials[3], state=optuna.trial.TrialState.PRUNED)
    assert trials[3].user_attrs[OVER_BUDGET] is True
    for t in trials[:3]:
        study.tell(t, 1.0)
    assert len(counted(study.trials)) == 3 and budget.next_step(study) == "done"


def test_the_budget_reads_the_study_only_near_its_end(monkeypatch):
    study, budget = _study(), TrialBudget(50)
    reads = []
    real = optuna.Study.get_trials
    monkeypatch.setattr(optuna.Study, "get_trials", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    guarded = budget.guard(lambda t: 1.0)
    assert budget.next_step(study) == "run" and len(reads) == 1  # the first look reads the study once
    for _ in range(40):  # then every trial well below the budget costs no read (O(1) per trial)
        assert budget.next_step(study) == "run"
        study.optimize(guarded, n_trials=1)
    assert len(reads) == 1
    while budget.next_step(study) == "run":  # near the end it counts what the study holds
        study.optimize(guarded, n_trials=1)
    assert len(reads) > 1 and len(counted(real(study))) == 50 and budget.next_step(study) == "done"


def test_a_stale_trial_s_retry_takes_its_place_in_the_budget():
    study, budget = _study(), TrialBudget(2)
    study.add_trial(optuna.create_trial(value=1.0))
    study.add_trial(optuna.create_trial(state=FAIL))  # failed as stale...
    study.add_trial(optuna.create_trial(state=WAITING, system_attrs={"failed_trial": 1, "retry_history": [1]}))  # ...and retried
    assert [t.number for t in counted(study.trials)] == [0, 2]
    assert budget.next_step(study) == "run" and budget.admits(study, 2)


DEVICE = {"name": "local-cpu", "bits": [8, 32], "profiler": {"kind": "local"}}
CPU = {"cpu": "AMD EPYC", "vector_isa": "avx512"}
STUDY = {"base_model_fingerprint": "a" * 64, "device": DEVICE, "worker": CPU}


def test_a_joining_worker_matching_the_study_is_accepted():
    check_joining(STUDY, "a" * 64, DEVICE, CPU, "s.yaml")
    check_joining(STUDY, "a" * 64, DEVICE, None, "s.yaml")  # a remote profiler: this CPU does not time
    check_joining({}, "b" * 64, {}, CPU, "s.yaml")  # a study from before the checks
    # a study from before the vector extension was recorded: the model name is compared alone
    check_joining({**STUDY, "worker": {"cpu": "AMD EPYC"}}, "a" * 64, DEVICE, {**CPU, "vector_isa": "avx2"}, "s.yaml")


@pytest.mark.parametrize("fingerprint, device, cpu, match", [
    ("b" * 64, DEVICE, CPU, r"s\.yaml: this worker's base model \(fingerprint bbbbbbbbbbbb\) is not the study's \(aaaaaaaaaaaa\)"),
    ("a" * 64, {**DEVICE, "bits": [8]}, CPU, r"s\.yaml: this worker's device profile 'local-cpu' differs from the study's in bits"),
    ("a" * 64, DEVICE, {**CPU, "cpu": "Ryzen 2"}, r"s\.yaml: this machine's CPU \(Ryzen 2, avx512\) is not the study's \(AMD EPYC, avx512\)"),
    # one model name, two vector widths (two VMs both called "AMD EPYC"): onnxruntime times them differently
    ("a" * 64, DEVICE, {**CPU, "vector_isa": "avx2"}, r"s\.yaml: this machine's CPU \(AMD EPYC, avx2\) is not the study's \(AMD EPYC, avx512\)"),
])
def test_a_joining_worker_that_differs_is_refused(fingerprint, device, cpu, match):
    with pytest.raises(StudyMismatchError, match=match):
        check_joining(STUDY, fingerprint, device, cpu, "s.yaml")


TRY_LOCK = "import filelock, sys; filelock.FileLock(sys.argv[1]).acquire(timeout=0.3); print('got it')"


def test_local_measurements_take_a_machine_wide_lock():
    def other_process() -> str:
        p = subprocess.run([sys.executable, "-c", TRY_LOCK, str(measure_lock_path())], capture_output=True, text=True)
        return "got it" if p.returncode == 0 else "Timeout" if "Timeout" in p.stderr else p.stderr

    with measure_lock("local"):
        assert other_process() == "Timeout"
    with measure_lock("agent"):  # a remote device: its agent pool serializes
        assert other_process() == "got it"
    assert other_process() == "got it"


def test_an_unreachable_storage_is_retried_then_reported_in_one_line():
    log: list[str] = []
    with pytest.raises(StorageError, match=r"^storage postgresql\+psycopg2://postgres:\*\*\*@127\.0\.0\.1:1/x unreachable after 3 attempts"):
        open_storage("postgresql+psycopg2://postgres:secret@127.0.0.1:1/x", retries=3, log=log.append)
    assert len(log) == 2 and "retrying in 0.5 s" in log[0] and "retrying in 1 s" in log[1]
    with pytest.raises(StorageError, match="not a relational URL"):
        open_storage("mongodb://127.0.0.1/x")


def test_several_workers_need_a_storage_for_parallel_writers(tmp_path, tiny_config, capsys):
    import yaml

    from autoprune.cli import main

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config.to_dict()))
    assert main(["run", str(path), "--workers", "2", "--out", str(tmp_path / "run")]) == 2
    assert "--workers 2 needs --storage with parallel writers" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
