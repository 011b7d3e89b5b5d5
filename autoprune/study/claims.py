"""Work done once per study, whichever of its workers gets there first, claimed through the storage.

A claim is an Optuna study named ``<study>::<key>`` in the study's own storage. Creating a study
is atomic in every Optuna storage: the relational ones reject a second study of the same name
(a unique constraint), the journal storage replays its log in one order and raises
:class:`optuna.exceptions.DuplicatedStudyError` for every writer but the first. So exactly one
worker creates a given claim; it records its worker id, beats while it works and marks the
claim done. The others wait for ``done``; if the owner stops beating for ``stale_s`` (it was
killed), the next generation ``<key>.1`` is claimed the same way and the work is redone. An
owner whose job raised (Ctrl-C, a lost storage) marks its claim stale at once, so the rerun
or another worker takes over without waiting.
Everything claimed this way is idempotent, so a takeover after a partial run is safe.

Claims hold no search data; they show up as extra studies in ``optuna studies``.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import optuna

from .storage import unreachable

__all__ = ["Claims", "SEP"]

SEP = "::"


class Claims:
    """Claims of one study (``study_name``) in ``storage``, made on behalf of worker ``worker``.

    Args:
        storage: The study's Optuna storage.
        study_name: The study the claims belong to.
        worker: This worker's id (stored with each claim it makes, for messages).
        stale_s: A claim whose owner has not beaten for this long is taken over.
        poll_s: How often a waiting worker looks again.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str, worker: str, *,
                 stale_s: float = 90.0, poll_s: float = 0.5) -> None:
        self.storage = storage
        self.study_name = study_name
        self.worker = worker
        self.stale_s = stale_s
        self.poll_s = poll_s

    def _name(self, key: str) -> str:
        return f"{self.study_name}{SEP}{key}"

    def claim(self, key: str) -> bool:
        """Claim ``key`` for this worker; False if another worker (or an earlier run) holds it."""
        try:
            sid = self.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], self._name(key))
        except optuna.exceptions.DuplicatedStudyError:
            return False
        self.storage.set_study_system_attr(sid, "owner", self.worker)
        self.storage.set_study_system_attr(sid, "beat", time.time())
        return True

    def attrs(self, key: str) -> dict[str, Any] | None:
        """The claim's record (owner, beat, done), or None if nobody claimed ``key``."""
        try:
            sid = self.storage.get_study_id_from_name(self._name(key))
        except KeyError:
            return None
        return self.storage.get_study_system_attrs(sid)

    def _set(self, key: str, name: str, value: Any) -> None:
        self.storage.set_study_system_attr(self.storage.get_study_id_from_name(self._name(key)), name, value)

    def index(self, prefix: str = "worker-") -> int:
        """The lowest ``n`` for which this worker claims ``<prefix><n>``: a number no other worker of the study gets."""
        taken = sum(s.study_name.startswith(self._name(prefix)) for s in self.storage.get_all_studies())
        n = taken
        while not self.claim(f"{prefix}{n}"):
            n += 1
        return n

    def _abandon(self, key: str) -> None:
        try:
            self._set(key, "beat", 0.0)  # stale now: the next worker to look takes over
        except Exception as e:
            if not unreachable(e):
                raise

    @contextmanager
    def _beating(self, key: str) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.stale_s / 4):
                try:
                    self._set(key, "beat", time.time())
                except Exception as e:  # a beat missed while the storage is away: stale_s allows for it
                    if not unreachable(e):
                        raise

        t = threading.Thread(target=beat, name=f"autoprune-claim-{key}", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join()

    def once(self, key: str, job: Callable[[], Any], log: Callable[[str], None], what: str) -> bool:
        """Run ``job`` here if this worker claims ``key`` first, else wait until its owner is done.

        Returns:
            True if this worker ran the job, False if another did.
        """
        gen, waited = 0, False
        while True:
            current = key if gen == 0 else f"{key}.{gen}"
            if self.claim(current):
                log(f"{what}: by this worker ({self.worker})")
                try:
                    with self._beating(current):
                        job()
                except BaseException:
                    self._abandon(current)
                    raise
                self._set(current, "done", True)
                return True
            rec = self.attrs(current) or {}
            # A claim is created, then its owner and first beat are written: one seen in between has
            # no beat yet, and is as fresh as the moment it was first seen (an abandoned one beat 0.0).
            first_seen = time.time()

            def last_beat(rec: dict[str, Any]) -> float:
                return float(rec.get("beat", first_seen))

            while not rec.get("done") and time.time() - last_beat(rec) < self.stale_s:
                if not waited:
                    log(f"{what}: run by worker {rec.get('owner')}; waiting for it")
                    waited = True
                time.sleep(self.poll_s)
                rec = self.attrs(current) or {}
            if rec.get("done"):
                return False
            gone = "gave it up" if last_beat(rec) == 0.0 else f"stopped beating {self.stale_s:g} s ago"
            log(f"{what}: worker {rec.get('owner')} {gone}; taking over")
            gen += 1
