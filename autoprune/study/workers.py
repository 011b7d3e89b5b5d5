"""What lets many workers share one study: a study-wide trial budget, joining checks, a measure lock.

* **Budget** — ``search.n_trials`` counts the study's trials, whichever worker runs them. A
  trial's place in the budget is its rank by trial number (numbers are given out by the
  storage) among the trials that count: every trial but one failed as stale and retried (its
  retry counts instead) and one turned away as over budget. A worker asks for a trial only
  while fewer than ``n_trials`` count, and a trial that two racing workers both started past
  the last place is turned away (PRUNED, ``over_budget``) before anything is built: the study
  never has more than ``n_trials`` counted trials.
* **Joining** — a worker whose base model (weights fingerprint), device profile or, for a
  ``local`` profiler, CPU model differs from what the study recorded would mix incomparable
  numbers into one front: it is refused (:func:`check_joining`).
* **Measure lock** — workers on one machine build in parallel but time one at a time: a
  machine-wide file lock (:func:`measure_lock`) is held around each local measurement.
* **Build threads** — a study builds on one torch thread count (byte-identical artifacts need
  one, see :mod:`autoprune.threads`), chosen when the study is created: ``--workers N`` makes
  it the machine's count divided by N (:func:`build_threads_for`), so N workers fill the cores
  instead of oversubscribing them.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import optuna

from ..exceptions import StudyMismatchError

__all__ = ["OVER_BUDGET", "counted", "TrialBudget", "check_joining", "measure_lock", "measure_lock_path", "build_threads_for"]

OVER_BUDGET = "over_budget"
_LIVE = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that count toward ``n_trials``, by trial number."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return sorted((t for t in trials if t.number not in retried and not t.user_attrs.get(OVER_BUDGET)), key=lambda t: t.number)


class TrialBudget:
    """The study-wide budget of ``n_trials`` trials.

    Args:
        n_trials: Trials the study runs in all.
    """

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials
        self.seen: int | None = None  # the highest trial number known here (None: not read yet)

    def next_step(self, study: optuna.Study) -> str:
        """``"run"`` (a trial is left to start), ``"wait"`` (others' trials still run) or ``"done"``.

        Reading every trial costs O(study) per trial, so the study is read only when the trial
        numbers known here come near the budget: below it, "run" is safe, because a trial that
        another worker's trials pushed past the budget is turned away by :meth:`guard`.
        """
        if self.seen is not None and self.seen + 1 < self.n_trials:
            return "run"
        trials = counted(study.get_trials(deepcopy=False))
        self.seen = max([self.seen if self.seen is not None else -1, *(t.number for t in trials)])
        if len(trials) < self.n_trials or any(t.state == optuna.trial.TrialState.WAITING for t in trials[: self.n_trials]):
            return "run"
        if any(t.state in _LIVE for t in trials[: self.n_trials]):
            return "wait"
        return "done"

    def admits(self, study: optuna.Study, number: int) -> bool:
        """Whether the trial ``number`` is within the budget (its rank among counted trials <= n_trials)."""
        self.seen = max(self.seen if self.seen is not None else -1, number)
        if number < self.n_trials:  # trial numbers start at 0, so its rank is at most number + 1
            return True
        return sum(t.number <= number for t in counted(study.get_trials(deepcopy=False))) <= self.n_trials

    def guard(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """``objective``, turning away a trial past the budget before it builds anything."""

        def guarded(trial: optuna.Trial) -> Any:
            if not self.admits(trial.study, trial.number):
                trial.set_user_attr(OVER_BUDGET, True)
                trial.set_user_attr("fail_reason", f"over the study's budget of {self.n_trials} trials (another worker took the last place)")
                raise optuna.TrialPruned()
            return objective(trial)

        return guarded


def check_joining(stored: dict[str, Any], fingerprint: str, device: dict[str, Any], cpu: dict[str, str] | None,
                  where: str) -> None:
    """Refuse a worker whose base model, device profile or CPU differs from the study's.

    Args:
        stored: The study's user attrs.
        fingerprint: This worker's base model fingerprint.
        device: This worker's device profile (``DeviceProfile.to_dict()``).
        cpu: This machine's CPU (``context.cpu_facts()``: model name and vector extension) if the profiler
            times here (``local``), else None. A fact the study did not record (an older study) is not compared.
        where: The study YAML, for the message.

    Raises:
        StudyMismatchError: on the first difference.
    """
    theirs = stored.get("base_model_fingerprint")
    if theirs and theirs != fingerprint:
        raise StudyMismatchError(
            f"{where}: this worker's base model (fingerprint {fingerprint[:12]}) is not the study's ({theirs[:12]}); "
            "every worker must load the same weights (same task options and model cache)")
    # The calibration file may be added or refitted between runs: its own device check guards it.
    mine = {k: v for k, v in device.items() if k != "calibration"}
    study_device = {k: v for k, v in (stored.get("device") or {}).items() if k != "calibration"}
    if study_device and study_device != mine:
        keys = sorted(k for k in set(mine) | set(study_device) if mine.get(k) != study_device.get(k))
        raise StudyMismatchError(f"{where}: this worker's device profile {device.get('name')!r} differs from the study's in {', '.join(keys)}")
    study_cpu = stored.get("worker") or {}
    shared = [k for k in (cpu or {}) if study_cpu.get(k)]
    if any(cpu[k] != study_cpu[k] for k in shared):
        mine, theirs = (", ".join(str(facts[k]) for k in shared) for facts in (cpu, study_cpu))
        raise StudyMismatchError(f"{where}: this machine's CPU ({mine}) is not the study's ({theirs}); "
                                 "a local profiler's timings are comparable only on the same CPU model and vector extension")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import filelock  # torch depends on it

    with filelock.FileLock(str(path)):
        yield


def measure_lock(kind: str) -> ContextManager[None]:
    """A machine-wide lock around one measurement by a profiler of ``kind``; none for remote ones.

    ``local`` profilers time on this machine's CPU: two workers timing at once would slow each
    other. Remote devices are shared through the agent pool, which serializes already.
    """
    if kind != "local":
        return nullcontext()
    return _file_lock(measure_lock_path())


def measure_lock_path() -> Path:
    """The lock file every worker of this user on this machine shares (in the system's temp directory)."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"autoprune-measure-{uid}.lock"


def build_threads_for(workers: int) -> int:
    """torch threads per build for ``workers`` workers on this machine: torch's count here // ``workers``, at least 1.

    torch's count is the machine's cores unless ``OMP_NUM_THREADS`` (or the CPU affinity) says
    fewer; one worker keeps it whole, as a study always did.
    """
    import torch

    return max(1, torch.get_num_threads() // workers)
