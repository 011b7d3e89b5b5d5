"""Shared fixtures: one model cache for the whole session, and a tiny real study.

The tiny study is real (digits data, a quarter-width CNN trained for a few epochs,
onnxruntime artifacts, a real SQLite Optuna storage); it is small only so the suite is fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY = {
    "version": 1,
    "name": "tiny",
    "task": "digits",
    "task_options": {"width": 0.25, "epochs": 4},
    "device": "local-cpu",
    "objectives": ["accuracy", "latency_ms"],
    "constraints": {"max_accuracy_drop": 0.2},
    "search": {"n_trials": 8, "round_to": 4, "seed": 1, "baselines": ["dense-fp32", "dense-int8", "uniform-0.5"],
               "sensitivity": {"enabled": False}},  # on by default; tests/test_sensitivity.py runs it
    "build": {"finetune_steps": 0, "bn_batches": 2},
    "confirm": {"rounds": 3, "min_duration_s": 0.1},
}


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Trained base models are cached here for the session (set before any task is built)."""
    path = Path(os.environ.get("AUTOPRUNE_TEST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["AUTOPRUNE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_config():
    from autoprune.config import StudyConfig

    return StudyConfig.from_dict(TINY, "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config, model_cache):
    """A finished 8-trial study, run once per session."""
    from autoprune.study import run_study

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run_study(tiny_config, out, progress=False, log=lambda m: None)
