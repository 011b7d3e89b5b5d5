"""A study on the real PostgreSQL server (Optuna RDB storage), resumed from a second process's view.

The roadmap's scale-out runs many workers over PostgreSQL; this proves today's study needs
nothing but the storage URL and the study YAML to run, resume and be read back.
"""

from __future__ import annotations

import dataclasses
import os
import uuid

import optuna
import pytest

from autoprune.study import run_study

URL = os.environ.get("AUTOPRUNE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def postgres_url():
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        with sqlalchemy.create_engine(URL).connect():
            pass
    except Exception as e:  # the python-svc machines (and CI) run PostgreSQL; elsewhere say why we skip
        pytest.skip(f"PostgreSQL not reachable at {URL}: {e}")
    return URL


def test_study_runs_and_resumes_on_postgres(tmp_path, tiny_config, postgres_url):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(tiny_config, name=name, storage=postgres_url, search=dataclasses.replace(tiny_config.search, n_trials=3))
    try:
        run_study(cfg, tmp_path / "a", progress=False, log=lambda m: None)
        cfg4 = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, n_trials=4))
        run_study(cfg4, tmp_path / "b", progress=False, log=lambda m: None)  # another directory, same storage
        study = optuna.load_study(study_name=name, storage=postgres_url)
        assert len(study.trials) == 4
        assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 3
        assert study.user_attrs["task"]["name"] == "digits"
    finally:
        try:
            optuna.delete_study(study_name=name, storage=postgres_url)
        except KeyError:
            pass
