"""Process-wide state that library calls touch: changed only inside a block, read without changing.

A library call leaves the process as it found it: the root logger, ``sys.stdout`` and
Optuna's verbosity belong to the program that imports autoprune (the ``autoprune`` command
owns its process and may set them at its entry). Where a third-party call needs one of them changed (onnxruntime's quantizer logs
advice through the root logger and prints calibration progress; Optuna logs every trial at
INFO), the change is made by a context manager here and undone when the block ends.

Where a result must not depend on the caller's random state, torch is seeded inside a fork
of it (:func:`torch_seeded`). torch's thread count has its own module,
:mod:`autoprune.threads` (there the count is part of the result). Warnings are silenced with
``warnings.catch_warnings()`` at the call, as the standard library intends.

Light on purpose: only the standard library is imported here (Optuna and torch when their
block is entered), so reading a run never pulls in torch through this module.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from typing import Callable, ContextManager, Iterator

__all__ = ["quiet_root_logger", "discard_stdout", "quiet_optuna", "torch_seeded", "current_umask"]


class _ProcessSetting:
    """A process-wide setting changed while any block, in any thread, is inside; restored when the last leaves.

    Saving and restoring per block goes wrong when blocks in two threads overlap: the second
    saves the first's value and puts it back after the first has restored the original,
    leaving the change in place for good. So the first block in changes the setting and the
    last one out undoes it.

    Args:
        change: Makes the change; returns the function that undoes it.
    """

    def __init__(self, change: Callable[[], Callable[[], None]]) -> None:
        self._change = change
        self._lock = threading.Lock()
        self._depth = 0
        self._undo: Callable[[], None] | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._undo = self._change()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    undo, self._undo = self._undo, None
                    undo()


def _quiet_root() -> Callable[[], None]:
    root = logging.getLogger()
    level, quiet = root.level, max(root.level, logging.ERROR)
    root.setLevel(quiet)
    # logging.warning() & co. call basicConfig() when the root logger has no handler, which
    # installs a stderr handler for good; a handler of our own for the block prevents that.
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)

    def undo() -> None:
        if root.level == quiet:  # a level someone set meanwhile is theirs to keep
            root.setLevel(level)
        if guard is not None:
            root.removeHandler(guard)

    return undo


def _discard_stdout() -> Callable[[], None]:
    before, sink = sys.stdout, io.StringIO()
    sys.stdout = sink

    def undo() -> None:
        if sys.stdout is sink:  # a stream someone set meanwhile is theirs to keep
            sys.stdout = before

    return undo


def _quiet_optuna() -> Callable[[], None]:
    import optuna  # when used: this module stays importable without it

    before = optuna.logging.get_verbosity()
    quiet = max(before, optuna.logging.ERROR)
    optuna.logging.set_verbosity(quiet)

    def undo() -> None:
        if optuna.logging.get_verbosity() == quiet:
            optuna.logging.set_verbosity(before)

    return undo


_ROOT, _STDOUT, _OPTUNA = _ProcessSetting(_quiet_root), _ProcessSetting(_discard_stdout), _ProcessSetting(_quiet_optuna)


def quiet_root_logger() -> ContextManager[None]:
    """Within the block, the root logger drops records below ERROR and ``logging.warning()``
    installs no handler; afterwards its level and handlers are as they were.

    For third-party code that logs through the root logger (onnxruntime's quantizer).
    """
    return _ROOT()


def discard_stdout() -> ContextManager[None]:
    """Within the block, what is printed to ``sys.stdout`` is dropped; afterwards it is the stream it was.

    For third-party code that prints progress (onnxruntime's histogram calibrators).
    """
    return _STDOUT()


def quiet_optuna() -> ContextManager[None]:
    """Within the block, Optuna logs errors only (not every trial at INFO); afterwards its verbosity is as it was."""
    return _OPTUNA()


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Within the block, torch's CPU random state is seeded with ``seed``; afterwards it is as it was.

    Not ``torch.manual_seed``: that also seeds every CUDA device, which a fork of the CPU
    state alone (``fork_rng(devices=[])``) does not restore.
    """
    import torch  # when used: this module stays importable without it

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    ``os.umask`` only sets it (returning the old value); setting and restoring it leaves a
    moment in which another thread's new files get the wrong mode. Linux shows it in
    ``/proc/self/status``; elsewhere it is set and restored.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
