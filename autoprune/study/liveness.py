"""Trials whose worker is gone: heartbeats on every storage, and the trial a worker gives up on.

* **Heartbeats.** Optuna's RDB storage beats and fails stale trials by itself. Its journal
  storage has no heartbeat (Optuna 5.0), so :class:`JournalHeartbeatStorage` is Optuna's
  ``JournalStorage`` with Optuna's own heartbeat protocol (``BaseHeartbeat``) added: Optuna's
  optimize loop beats from a thread while a trial runs, and each beat is a trial system attr
  (``autoprune:heartbeat``: time, host, pid) written through the journal like any other. A
  RUNNING trial is stale when its last beat is older than the grace period, or at once when
  its worker ran on this same machine and that process is gone (SIGKILL, a crash). Optuna's
  ``fail_stale_trials`` then fails it and the retry callback queues it again, exactly as on
  PostgreSQL; ``retry_history`` keeps :func:`~autoprune.study.workers.counted` right. As in
  Optuna's RDB storage, a trial that never beat is never stale. Beats carry the worker's wall
  clock, so machines sharing a journal need clocks within the grace period of each other.
* **Given up.** A trial this worker stops running (Ctrl-C, the storage gone mid-trial) is
  failed with the reason in its ``fail_reason`` and queued again with the same parameters
  (:class:`TrialWatch`), so rerunning the command resumes with nothing lost. That includes a
  trial the storage went away *while Optuna was asking for it*: created (or taken from the
  queue) RUNNING, but cut off before its first beat, so no worker would ever find it stale and
  the study would wait on it forever. Both storages remember the last trial each thread set
  RUNNING (:class:`StartedTrials`), which is how the watch knows it.

A beat that cannot be written (the storage briefly away) is skipped: missing beats is what the
grace period is for.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from .storage import unreachable

__all__ = ["JournalHeartbeatStorage", "RDBHeartbeatStorage", "StartedTrials", "TrialWatch", "retry_stale", "BEAT_ATTR", "INTERRUPTED"]

BEAT_ATTR = "autoprune:heartbeat"
INTERRUPTED = "interrupted (SIGINT/Ctrl-C) before it finished; queued again with the same parameters"
_REASON_ATTRS = ("fail_reason",)  # a retry starts without its predecessor's reason


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None if there is no such process (or no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")  # processes are comparable by pid only within one namespace
    except OSError:
        return None


def _this_process() -> dict[str, Any]:
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "pidns": _pid_namespace(), "pid": os.getpid(),
            "started": stat[19] if stat else None}  # field 22: start time, tells a reused pid apart


def _gone(beat: dict[str, Any]) -> bool:
    """Whether the process that wrote ``beat`` ran on this machine and has ended (a zombie has ended)."""
    here = _this_process()
    if here["pidns"] is None or (beat.get("host"), beat.get("pidns")) != (here["host"], here["pidns"]):
        return False  # another machine (or no /proc here): only the clock can tell
    stat = _proc_stat(int(beat["pid"]))
    return stat is None or stat[0] == "Z" or stat[19] != beat.get("started")


def _stale(trial: FrozenTrial, now: float, grace_s: float) -> bool:
    beat = trial.system_attrs.get(BEAT_ATTR)
    if not isinstance(beat, dict) or beat.get("trial_id") != trial._trial_id:
        return False  # never beat (a retry carries its predecessor's last beat: not its own)
    return now - float(beat["at"]) > grace_s or _gone(beat)


class StartedTrials:
    """A storage mixin: remembers, per thread, the last trial that thread set RUNNING.

    Optuna's ``ask`` creates a RUNNING trial (or takes a WAITING one) and then reads it and
    samples before the trial's heartbeat starts; a storage error in between leaves a RUNNING
    trial that never beats. Kept in a dict by thread id (a storage is shared by a worker's
    threads, and must stay picklable).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._started: dict[int, int] = {}
        super().__init__(*args, **kwargs)

    def _note(self, trial_id: int, template_trial: FrozenTrial | None) -> None:
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._started[threading.get_ident()] = trial_id

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        self._note(trial_id, template_trial)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        taken = super().set_trial_state_values(trial_id, state, values)
        if taken and state == TrialState.RUNNING:
            self._started[threading.get_ident()] = trial_id  # a queued trial this thread took
        return taken

    def started(self) -> int | None:
        """The trial this thread last set RUNNING, until :meth:`forget_started`."""
        return self._started.get(threading.get_ident())

    def forget_started(self) -> None:
        self._started.pop(threading.get_ident(), None)


def _started_on(storage: Any) -> StartedTrials | None:
    """``storage``'s :class:`StartedTrials` record, looking through Optuna's cache (``_CachedStorage._backend``)."""
    for it in (storage, getattr(storage, "_backend", None)):
        if isinstance(it, StartedTrials):
            return it
    return None


class JournalHeartbeatStorage(StartedTrials, JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with Optuna's heartbeat protocol, beats kept in trial system attrs.

    Args:
        backend: The journal's backend (``JournalRedisBackend``, ``JournalFileBackend``).
        heartbeat_interval: Seconds between beats.
        grace_period: A trial whose last beat is this many seconds old is stale.
        stale_trial_callback: Called with each trial failed as stale (see :func:`retry_stale`).
    """

    def __init__(self, backend: BaseJournalBackend, heartbeat_interval: int, grace_period: int,
                 stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback
        self._process = _this_process()

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, {"trial_id": trial_id, "at": time.time(), **self._process})
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker failed it as stale meanwhile; this worker's tell will be refused
        except Exception as e:
            if not unreachable(e):
                raise

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if _stale(t, now, self.grace_period)]

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback


class RDBHeartbeatStorage(StartedTrials, RDBStorage):
    """Optuna's RDB storage whose beats skip a moment without the server instead of ending the beating thread."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)  # what Optuna's cache in front of it calls
        self._note(trial._trial_id, template_trial)
        return trial

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as e:
            if not unreachable(e):
                raise


class _Retry(RetryHeartbeatStaleTrialCallback):
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _REASON_ATTRS}
        trial.system_attrs = {k: v for k, v in trial.system_attrs.items() if k != BEAT_ATTR}
        super().__call__(study, trial)


def retry_stale(max_retry: int) -> RetryHeartbeatStaleTrialCallback:
    """Optuna's ``RetryHeartbeatStaleTrialCallback``, the retry leaving out its predecessor's ``fail_reason`` and last beat."""
    with warnings.catch_warnings():  # experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _Retry(max_retry=max_retry)


class TrialWatch:
    """Wraps the objective to know which trial this worker runs, so that one it gives up on is queued again.

    Args:
        objective: The objective Optuna calls.
        retry: Queues a failed trial again (the storage's stale-trial callback).
    """

    def __init__(self, objective: Callable[[optuna.Trial], Any], retry: Callable[[optuna.Study, FrozenTrial], None]) -> None:
        self.objective = objective
        self.retry = retry
        self.trial_id: int | None = None  # set while Optuna runs a trial here; cleared when it ended normally
        self.cut_short = False  # the objective ended by an interrupt or a lost storage, not by its own result

    def __call__(self, trial: optuna.Trial) -> Any:
        self.trial_id, self.cut_short = trial._trial_id, False
        try:
            return self.objective(trial)
        except KeyboardInterrupt:
            self.cut_short = True
            try:
                trial.set_user_attr("fail_reason", INTERRUPTED)  # Optuna then tells FAIL
            except Exception:
                pass  # the storage is away, or another worker failed the trial as stale: give_up() sorts it out
            raise
        except Exception as e:
            self.cut_short = unreachable(e)
            raise

    def ended(self, study: optuna.Study) -> None:
        """The trial ended normally (Optuna told its state): nothing to give up."""
        self.trial_id = None
        if (record := _started_on(study._storage)) is not None:
            record.forget_started()

    def give_up(self, study: optuna.Study, reason: str) -> int | None:
        """Fail the trial this worker was running (if it still runs) and queue it again; its number, or None.

        The trial is the one the objective was called with or, where the storage went away
        while Optuna was asking for a trial (before the objective and before any beat), the one
        this thread last set RUNNING. A trial that ended on its own (complete, pruned, a
        candidate's failure) is left as it is, and so is one another worker already failed as
        stale (that worker retried it).
        """
        record = _started_on(study._storage)
        tid = self.trial_id if self.trial_id is not None else record.started() if record is not None else None
        if tid is None:
            return None
        # both are kept until the trial is settled: a storage error below leaves them for the next call
        storage = study._storage  # Optuna's stale-trial handling works on the storage the same way
        trial = storage.get_trial(tid)
        settled: int | None = None
        if trial.state == TrialState.RUNNING:
            try:
                storage.set_trial_user_attr(tid, "fail_reason", reason)
                storage.set_trial_state_values(tid, TrialState.FAIL)
                settled, self.cut_short = trial.number, True  # failed here: a next call (if the retry fails) retries it
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker failed it as stale meanwhile, and retried it
        elif trial.state == TrialState.FAIL and self.cut_short:
            settled = trial.number
        if settled is not None:
            self.retry(study, copy.deepcopy(storage.get_trial(tid)))
        self.trial_id = None
        if record is not None:
            record.forget_started()
        return settled
