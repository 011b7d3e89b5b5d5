"""Claims through the real storages: one winner among racing workers, a dead owner's work taken over."""

from __future__ import annotations

import threading
import time

import pytest

from autoprune.study.claims import Claims
from autoprune.study.storage import open_storage


@pytest.fixture(params=["postgres", "redis"])
def url(request):
    return request.getfixturevalue("postgres_db" if request.param == "postgres" else "redis_db")


def test_exactly_one_of_racing_workers_gets_a_claim(url):
    n = 6
    storages = [open_storage(url) for _ in range(n)]  # one connection each, as separate processes
    go = threading.Barrier(n)
    won: list[bool] = [False] * n

    def race(i: int) -> None:
        go.wait()
        won[i] = Claims(storages[i], "s", f"w{i}").claim("dense")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(won) == 1
    assert Claims(storages[0], "s", "x").attrs("dense")["owner"] == f"w{won.index(True)}"
    indices = sorted(Claims(storages[i], "s", f"w{i}").index() for i in range(3))
    assert indices == [0, 1, 2]


def test_a_dead_owner_is_taken_over_and_a_live_one_is_waited_for(url):
    log: list[str] = []
    dead = Claims(open_storage(url), "s", "dead", stale_s=0.4, poll_s=0.05)
    assert dead.claim("prepare")  # then never beats nor finishes: it was killed
    ran: list[str] = []
    taker = Claims(open_storage(url), "s", "taker", stale_s=0.4, poll_s=0.05)
    assert taker.once("prepare", lambda: ran.append("taker"), log.append, "preparing")
    assert ran == ["taker"] and any("taking over" in m for m in log)
    late = Claims(open_storage(url), "s", "late", stale_s=0.4, poll_s=0.05)
    assert not late.once("prepare", lambda: ran.append("late"), log.append, "preparing")  # done already
    assert ran == ["taker"]

    slow = Claims(open_storage(url), "s", "slow", stale_s=0.4, poll_s=0.05)
    waiter = Claims(open_storage(url), "s", "waiter", stale_s=0.4, poll_s=0.05)
    t = threading.Thread(target=slow.once, args=("confirm", lambda: (time.sleep(1.2), ran.append("slow")), log.append, "confirming"))
    t.start()
    time.sleep(0.2)
    assert not waiter.once("confirm", lambda: ran.append("waiter"), log.append, "confirming")  # it beats: wait, never redo
    t.join()
    assert ran == ["taker", "slow"]


def test_a_claim_seen_before_its_owner_wrote_its_first_beat_is_waited_for(url):
    """Creating the claim and writing its beat are two storage calls: a worker looking in between must not take over."""
    import optuna

    storage = open_storage(url)
    sid = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s::confirm")  # claimed; no beat yet
    log: list[str] = []
    ran: list[str] = []
    waiter = Claims(open_storage(url), "s", "waiter", stale_s=5.0, poll_s=0.05)
    t = threading.Thread(target=lambda: ran.append(waiter.once("confirm", lambda: ran.append("redone"), log.append, "confirming")))
    t.start()
    time.sleep(0.5)
    storage.set_study_system_attr(sid, "owner", "slow")
    storage.set_study_system_attr(sid, "beat", time.time())
    time.sleep(0.2)
    storage.set_study_system_attr(sid, "done", True)
    t.join()
    assert ran == [False] and not any("taking over" in m for m in log)

    dead = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s::prepare")  # its owner died before beating
    taker = Claims(open_storage(url), "s", "taker", stale_s=0.4, poll_s=0.05)
    assert dead is not None and taker.once("prepare", lambda: ran.append("taker"), log.append, "preparing")
    assert ran == [False, "taker"] and any("stopped beating 0.4 s ago; taking over" in m for m in log)
