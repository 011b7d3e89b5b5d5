"""autoprune._scoped: process-wide state changed inside a block and put back after it, overlapping blocks included."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import optuna
import pytest
import torch

from autoprune._scoped import current_umask, discard_stdout, quiet_optuna, quiet_root_logger, torch_seeded


@pytest.fixture(autouse=True)
def optuna_verbosity():
    """Optuna's verbosity as it was after each test."""
    before = optuna.logging.get_verbosity()
    yield
    optuna.logging.set_verbosity(before)


@contextlib.contextmanager
def bare_root_logger():
    """The root logger with no handler at WARNING, as a fresh process has it.

    pytest adds its capture handlers for the test's call, after fixtures are set up: they
    are taken off (and put back) inside the test.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    try:
        yield root
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)


def test_quiet_root_logger_drops_warnings_and_installs_no_handler(capsys):
    with bare_root_logger() as root:
        with quiet_root_logger():
            logging.warning("advice nobody asked for")  # would call basicConfig() on a bare root logger
            logging.getLogger("some.library").warning("advice through a child logger")
            assert root.level == logging.ERROR
        assert (root.level, root.handlers) == (logging.WARNING, [])
    assert capsys.readouterr().err == ""


def test_quiet_root_logger_keeps_a_level_set_meanwhile():
    with bare_root_logger() as root:
        with quiet_root_logger():
            root.setLevel(logging.DEBUG)
        assert root.level == logging.DEBUG


def test_discard_stdout_drops_prints_and_puts_the_stream_back(capsys):
    stdout = sys.stdout
    with discard_stdout():
        print("calibration progress")
    assert sys.stdout is stdout
    print("after")
    assert capsys.readouterr().out == "after\n"


@pytest.mark.parametrize("scope, read", [
    (quiet_root_logger, lambda: logging.getLogger().level),
    (discard_stdout, lambda: sys.stdout),
    (quiet_optuna, optuna.logging.get_verbosity),
])
def test_blocks_that_overlap_without_nesting_restore_the_original(scope, read):
    """Two threads' blocks: the first leaves while the second is inside, then the second leaves.

    Saving and restoring per block would leave the first block's change in place for good.
    """
    optuna.logging.set_verbosity(optuna.logging.INFO)
    with bare_root_logger():
        original = read()
        first, second = scope(), scope()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        changed = read()
        second.__exit__(None, None, None)
        assert changed != original  # still changed while the second block is inside
        assert read() == original


def test_quiet_optuna_restores_the_verbosity():
    optuna.logging.set_verbosity(optuna.logging.INFO)
    with quiet_optuna():
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR
    assert optuna.logging.get_verbosity() == optuna.logging.INFO


def test_quiet_optuna_never_makes_optuna_louder():
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    with quiet_optuna():
        assert optuna.logging.get_verbosity() == optuna.logging.CRITICAL


def test_a_failing_block_restores_too():
    with bare_root_logger() as root:
        with pytest.raises(RuntimeError), quiet_root_logger():
            raise RuntimeError
        assert root.level == logging.WARNING


def test_torch_seeded_draws_the_same_numbers_and_leaves_the_callers_random_state():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with torch_seeded(7):
        a = torch.rand(3)
    with torch_seeded(7):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_current_umask_reads_the_umask_without_changing_it(mask):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        assert os.umask(mask) == mask
    finally:
        os.umask(old)
