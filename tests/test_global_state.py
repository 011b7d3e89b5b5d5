"""Library calls leave the process as they found it: a build, a study and a report change no global state.

Third-party modules register warnings filters and loggers when they are first imported
(plotly, sympy, SQLAlchemy): that is importing, not calling, so each call is made once first
(the study's first run is the session's tiny study). The state is then set to known values a
careless call would change (a bare root logger at WARNING, Optuna at INFO, umask 022) and
snapshotted around the next call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import sys
import warnings

import numpy as np
import optuna
import torch
from torch import nn

import autoprune
from autoprune.compress import BuildSettings
from autoprune.plan import LayerPlan, Plan
from autoprune.report import write_report
from autoprune.study import run_study

_UNTOUCHED_LOGGER = (logging.NOTSET, [], [], True, False)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _loggers() -> dict:
    """Every named logger's level, handlers, filters, propagation and disabled flag."""
    return {
        name: (lg.level, list(lg.handlers), list(lg.filters), lg.propagate, lg.disabled)
        for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }


def snapshot() -> dict:
    """The process-wide state a library call could change."""
    root = logging.getLogger()
    return {
        "root logger": (root.level, list(root.handlers), list(root.filters)),
        "loggers": _loggers(),
        "logging.disable": logging.root.manager.disable,
        "optuna verbosity": optuna.logging.get_verbosity(),
        "sys.stdout": sys.stdout,
        "sys.stderr": sys.stderr,
        "umask": _umask(),
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "warnings.filters": list(warnings.filters),
        "torch threads": torch.get_num_threads(),
        "torch interop threads": torch.get_num_interop_threads(),
        "torch RNG": torch.get_rng_state().numpy().tobytes(),
        "numpy RNG": _comparable(np.random.get_state()),
        "python RNG": random.getstate(),
        "torch grad enabled": torch.is_grad_enabled(),
        "torch default dtype": torch.get_default_dtype(),
        "torch deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def _comparable(state: tuple) -> tuple:
    """numpy's RNG state with its key array as bytes, so that ``==`` compares it."""
    return tuple(x.tobytes() if isinstance(x, np.ndarray) else x for x in state)


def changes(before: dict, after: dict) -> dict:
    """What differs, per key; loggers per name (one created and left untouched is no change)."""
    diff = {k: (before[k], after[k]) for k in before if k != "loggers" and before[k] != after[k]}
    for name in before["loggers"].keys() | after["loggers"].keys():
        was, now = before["loggers"].get(name, _UNTOUCHED_LOGGER), after["loggers"].get(name, _UNTOUCHED_LOGGER)
        if was != now:
            diff[f"logger {name!r}"] = (was, now)
    return diff


@contextlib.contextmanager
def known_state():
    """A bare root logger at WARNING, Optuna at INFO, umask 022; what was there is put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    verbosity, mask = optuna.logging.get_verbosity(), os.umask(0o022)
    for h in handlers:  # pytest's capture handlers; taken off and put back within the test's call
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        optuna.logging.set_verbosity(verbosity)
        os.umask(mask)


def assert_leaves_the_process_as_it_was(call, warm_up: bool = True) -> None:
    """``call()`` in the known state changes nothing :func:`snapshot` sees (after one call first, if ``warm_up``)."""
    if warm_up:
        call()  # imports, first-use caches
    with known_state():
        before = snapshot()
        call()
        after = snapshot()
    assert changes(before, after) == {}


def test_snapshot_sees_each_kind_of_change():
    """The check itself: a change of each kind the library could make shows up in the snapshot."""
    def careless():
        logging.getLogger().setLevel(logging.ERROR)
        logging.warning("installs a handler on a bare root logger")
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        os.umask(0o077)
        torch.manual_seed(0)
        sys.stdout = sys.stderr

    stdout = sys.stdout
    with known_state(), torch.random.fork_rng(devices=[]):
        before = snapshot()
        try:
            careless()
            after = snapshot()
        finally:
            sys.stdout = stdout
    assert {"root logger", "optuna verbosity", "umask", "torch RNG", "sys.stdout", "logger 'optuna'"} <= changes(before, after).keys()


class _DropoutCNN(nn.Module):
    """Small, with dropout: fine-tuning it draws from torch's random state."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.drop(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(x.mean((2, 3)))


def test_a_build_leaves_the_process_as_it_was(tmp_path):
    """Pruning, fine-tuning (with dropout), int8 quantization and writing, on a thread count not the caller's."""
    model = _DropoutCNN().eval()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, 64)
    plan = Plan({"conv1": LayerPlan(ratio=0.5), "re:.*": LayerPlan(bits=8)})
    settings = BuildSettings(finetune_steps=2, bn_batches=1, calibration_samples=32)
    threads = 2 if torch.get_num_threads() == 1 else 1

    assert_leaves_the_process_as_it_was(
        lambda: autoprune.build(model, plan, (X, y), torch.zeros(1, 1, 8, 8), settings, threads=threads, out=tmp_path / "m.onnx"))


def test_a_study_leaves_the_process_as_it_was(tiny_config, tiny_run, tmp_path):
    """Three trials of the tiny study (its int8 baseline quantizes) in a directory of its own."""
    search = dataclasses.replace(tiny_config.search, n_trials=3, baselines=("dense-fp32", "dense-int8"))
    config = dataclasses.replace(tiny_config, search=search)
    assert_leaves_the_process_as_it_was(lambda: run_study(config, tmp_path, progress=False, log=lambda m: None), warm_up=False)


def test_writing_a_report_leaves_the_process_as_it_was(tiny_run, tmp_path):
    """Opening the finished tiny study and rendering its page."""
    assert_leaves_the_process_as_it_was(lambda: write_report(tiny_run.out_dir, tmp_path / "report.html"))
