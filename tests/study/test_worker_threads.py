"""Build threads with many workers: chosen when the study is created (cores // --workers), recorded, used by joiners."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import torch
import yaml
from test_workers import ROOT, tiny, write_study  # noqa: F401  (tiny: the module's fixture)

import autoprune.study.candidate as candidate
from autoprune.study import run_study
from autoprune.study.storage import open_storage
from autoprune.study.workers import build_threads_for


@pytest.mark.parametrize("torch_threads, workers, expected", [(4, 1, 4), (4, 2, 2), (4, 3, 1), (2, 4, 1), (1, 2, 1)])
def test_workers_share_the_machine_s_threads(torch_threads, workers, expected):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(torch_threads)
        assert build_threads_for(workers) == expected
    finally:
        torch.set_num_threads(before)


def test_a_joining_worker_builds_on_the_study_s_recorded_count(tmp_path, tiny, monkeypatch):
    study = write_study(tmp_path, tiny, "threads", 4)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run_study(study, tmp_path / "a", storage=url, progress=False, log=lambda m: None, build_threads=1)

    used = []
    pinned = candidate.torch_threads
    monkeypatch.setattr(candidate, "torch_threads", lambda n: used.append(n) or pinned(n))
    cfg = yaml.safe_load(study.read_text())
    cfg["search"]["n_trials"] = 6
    study.write_text(yaml.safe_dump(cfg))
    result = run_study(study, tmp_path / "b", storage=url, progress=False, log=lambda m: None, build_threads=2)

    assert result.study.user_attrs["build_threads"] == 1
    assert used and set(used) == {1}  # the joiner's own proposal (2) is not used
    assert len(result.study.trials) == 6


def test_workers_option_records_the_machine_s_threads_divided_among_the_workers(tmp_path, redis_db, tiny):
    study = write_study(tmp_path, tiny, "split", 4)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's own count: the machine's cores
    env["PYTHONPATH"] = str(ROOT)
    cores = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                               capture_output=True, text=True, check=True).stdout)
    p = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "autoprune", "run", str(study), "--storage", redis_db,
                        "--workers", "2", "--quiet", "--out", str(tmp_path / "run")],
                       env=env, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert p.returncode == 0, p.stderr
    recorded = optuna.load_study(study_name="split", storage=open_storage(redis_db)).user_attrs["build_threads"]
    assert recorded == max(1, cores // 2)  # e.g. 1 of this 2-core machine's 2, where one worker would take both
