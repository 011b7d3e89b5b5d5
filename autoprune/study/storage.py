"""Opening a study's Optuna storage: relational (SQLite, PostgreSQL, MySQL) or the journal on Redis.

Only Optuna's own storages are used, all with Optuna's heartbeats: a worker killed mid-trial
leaves a trial that the next worker to look fails as stale and re-enqueues
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`). Relational storages have them
built in; the journal storage gets them through :mod:`autoprune.study.liveness`.

A storage that does not answer is retried with exponential backoff, when the run starts and
during the search (:func:`retrying`), before the run gives up with one clear line naming the
storage (:class:`~autoprune.exceptions.StorageError`).
"""

from __future__ import annotations

import re
import time
import warnings
from typing import Callable, TypeVar

import optuna

from ..exceptions import StorageError

__all__ = ["open_storage", "is_relational", "has_heartbeat", "redact", "unreachable", "retrying", "storage_lost",
           "HEARTBEAT_S", "RETRIES"]

HEARTBEAT_S = 30  # Optuna's heartbeat interval; a trial is stale after GRACE_FACTOR of them
GRACE_FACTOR = 3
MAX_RETRY = 3  # a trial that went stale this many times is left failed
RETRIES = 5  # attempts to reach the storage: waits of 0.5, 1, 2, 4 s between them

T = TypeVar("T")


def is_relational(url: str) -> bool:
    return url.startswith(("sqlite:", "postgresql", "mysql"))


def has_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    """Whether Optuna fails this storage's stale trials (every storage opened here)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _lost_connection(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain (itself, or one it was raised from or during) that says the server did not answer."""
    seen: BaseException | None = error
    while seen is not None:
        kind = type(seen)
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return seen
        if kind.__module__.startswith("sqlalchemy") and (
                kind.__name__ in ("OperationalError", "InterfaceError") or getattr(seen, "connection_invalidated", False)):
            return seen
        if kind.__module__.startswith("redis") and kind.__name__ in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from, or during) says the storage's server did not answer.

    Optuna's RDB storage wraps SQLAlchemy's errors in ``StorageInternalError``; the journal's
    Redis backend raises redis's own; a socket raises ``ConnectionError``/``TimeoutError``.
    """
    return _lost_connection(error) is not None


def _reason(error: BaseException) -> str:
    error = _lost_connection(error) or error  # the driver's own words, not a wrapper's
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def storage_lost(url: str, what: str, error: BaseException) -> StorageError:
    """The one-line error for a storage that stopped answering while the run was ``what``."""
    return StorageError(f"storage {redact(url)} unreachable ({what}): {_reason(error)}; rerun the same command to resume")


def retrying(call: Callable[[], T], url: str, what: str, *, retries: int = RETRIES,
             log: Callable[[str], None] | None = None, when: Callable[[BaseException], bool] = unreachable) -> T:
    """``call()``, run again after 0.5, 1, 2, 4 ... s while the storage at ``url`` does not answer.

    Args:
        call: Work that reads or writes the storage and may be run again from its start.
        url: The storage, for messages (its password is left out).
        what: What ``call`` does, for messages ("the search").
        retries: Attempts before giving up.
        log: Where a failed attempt is reported (default: nowhere).
        when: Which errors are retried (default: the storage did not answer, :func:`unreachable`).

    Raises:
        StorageError: the storage did not answer ``retries`` times in a row. Other errors pass through.
    """
    wait, t0 = 0.5, time.monotonic()
    for attempt in range(1, retries + 1):
        try:
            return call()
        except StorageError:
            raise
        except Exception as e:
            if not when(e):
                raise
            if attempt == retries:
                raise StorageError(f"storage {redact(url)} unreachable after {retries} attempts over "
                                   f"{time.monotonic() - t0:.0f} s ({what}): {_reason(e)}") from None
            if log:
                log(f"storage {redact(url)} unreachable ({what}: {_reason(e)}); retrying in {wait:g} s")
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def _make(url: str, heartbeat_s: int) -> optuna.storages.BaseStorage:
    from .liveness import JournalHeartbeatStorage, RDBHeartbeatStorage, retry_stale

    grace = GRACE_FACTOR * heartbeat_s
    with warnings.catch_warnings():  # heartbeats and the journal are experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if url.startswith(("redis://", "rediss://", "unix://")):
            from optuna.storages.journal import JournalRedisBackend

            # the backend connects lazily: reading the log here reaches it now
            return JournalHeartbeatStorage(JournalRedisBackend(url), heartbeat_s, grace, retry_stale(MAX_RETRY))
        if is_relational(url):
            # pre_ping: a pooled connection the server dropped (a restart) is replaced, not used
            engine = {} if url.startswith("sqlite:") else {"pool_pre_ping": True}
            return RDBHeartbeatStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s, grace_period=grace,
                                       heartbeat_stale_trial_callback=retry_stale(MAX_RETRY))
    raise StorageError(f"storage {redact(url)!r}: not a relational URL (sqlite:///, postgresql://, mysql://) "
                       "nor a Redis URL (redis://) for Optuna's journal storage")


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, *, retries: int = RETRIES,
                 log: Callable[[str], None] | None = None) -> optuna.storages.BaseStorage:
    """The Optuna storage at ``url``, reached with up to ``retries`` attempts and exponential backoff.

    Args:
        url: A relational URL (``sqlite:///``, ``postgresql://``, ``mysql://``) or ``redis://``
            for the journal storage on Redis.
        heartbeat_s: Optuna's heartbeat interval; a trial whose worker stopped beating for 3
            intervals is failed and retried.
        retries: Attempts before giving up.
        log: Where a failed attempt is reported (default: nowhere).

    Raises:
        StorageError: unknown kind of URL, or the storage did not answer ``retries`` times.
    """
    try:
        # Any error is tried again here: workers opening a fresh database at once race to create
        # Optuna's tables, and the losers' IntegrityError is gone on the next attempt.
        return retrying(lambda: _make(url, heartbeat_s), url, "opening it", retries=retries, log=log,
                        when=lambda e: not isinstance(e, ImportError))
    except ImportError as e:  # the journal on Redis needs the redis client
        raise StorageError(f"storage {redact(url)}: {e}; install it with pip install 'autoprune[redis]'") from None
