"""Opening a study's Optuna storage: relational (SQLite, PostgreSQL, MySQL) or the journal on Redis.

Only Optuna's own storages are used. Relational ones get Optuna's heartbeats: a worker killed
mid-trial leaves a trial that the next worker to look fails as stale and re-enqueues
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`). The journal storage has no
heartbeat in Optuna, so a trial whose worker was killed stays RUNNING there; use a relational
storage where workers may die.

A storage that does not answer is retried with exponential backoff before the run gives up
with one clear line (:class:`~autoprune.exceptions.StorageError`).
"""

from __future__ import annotations

import re
import time
import warnings
from typing import Callable

import optuna

from ..exceptions import StorageError

__all__ = ["open_storage", "is_relational", "has_heartbeat", "redact", "HEARTBEAT_S", "RETRIES"]

HEARTBEAT_S = 30  # Optuna's heartbeat interval; a trial is stale after GRACE_FACTOR of them
GRACE_FACTOR = 3
MAX_RETRY = 3  # a trial that went stale this many times is left failed
RETRIES = 5  # attempts to reach the storage: waits of 0.5, 1, 2, 4 s between them


def is_relational(url: str) -> bool:
    return url.startswith(("sqlite:", "postgresql", "mysql"))


def has_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    """Whether Optuna fails this storage's stale trials (relational storages opened here)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _make(url: str, heartbeat_s: int) -> optuna.storages.BaseStorage:
    with warnings.catch_warnings():  # heartbeats and the journal are experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if url.startswith(("redis://", "rediss://", "unix://")):
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            storage = JournalStorage(JournalRedisBackend(url))
            storage.get_all_studies()  # the backend connects lazily: reach it now
            return storage
        if is_relational(url):
            # pre_ping: a pooled connection the server dropped (a restart) is replaced, not used
            engine = {} if url.startswith("sqlite:") else {"pool_pre_ping": True}
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat_s, grace_period=GRACE_FACTOR * heartbeat_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    raise StorageError(f"storage {redact(url)!r}: not a relational URL (sqlite:///, postgresql://, mysql://) "
                       "nor a Redis URL (redis://) for Optuna's journal storage")


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, *, retries: int = RETRIES,
                 log: Callable[[str], None] | None = None) -> optuna.storages.BaseStorage:
    """The Optuna storage at ``url``, reached with up to ``retries`` attempts and exponential backoff.

    Args:
        url: A relational URL (``sqlite:///``, ``postgresql://``, ``mysql://``) or ``redis://``
            for the journal storage on Redis.
        heartbeat_s: Optuna's heartbeat interval (relational storages); a trial whose worker
            stopped beating for 3 intervals is failed and retried.
        retries: Attempts before giving up.
        log: Where a failed attempt is reported (default: nowhere).

    Raises:
        StorageError: unknown kind of URL, or the storage did not answer ``retries`` times.
    """
    wait, t0 = 0.5, time.monotonic()
    for attempt in range(1, retries + 1):
        try:
            return _make(url, heartbeat_s)
        except StorageError:
            raise
        except ImportError as e:  # the journal on Redis needs the redis client
            raise StorageError(f"storage {redact(url)}: {e}; install it with pip install 'autoprune[redis]'") from None
        except Exception as e:  # sqlalchemy's OperationalError, redis's ConnectionError, OSError...
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if attempt == retries:
                raise StorageError(f"storage {redact(url)} unreachable after {retries} attempts over "
                                   f"{time.monotonic() - t0:.0f} s: {reason}") from None
            if log:
                log(f"storage {redact(url)} unreachable ({reason}); retrying in {wait:g} s")
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")
