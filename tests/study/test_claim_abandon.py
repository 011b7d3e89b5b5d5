"""A claim whose job stopped with an error (Ctrl-C, a lost storage) is taken over at once, not after stale_s (real Redis)."""

from __future__ import annotations

import time

import pytest

from autoprune.study.claims import Claims
from autoprune.study.storage import open_storage


def test_an_interrupted_owner_s_claim_is_taken_over_without_waiting(redis_db):
    owner = Claims(open_storage(redis_db), "s", "owner", stale_s=60.0, poll_s=0.05)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        owner.once("prepare", interrupted, lambda m: None, "preparing")
    log: list[str] = []
    ran: list[str] = []
    t0 = time.monotonic()
    rerun = Claims(open_storage(redis_db), "s", "rerun", stale_s=60.0, poll_s=0.05)
    assert rerun.once("prepare", lambda: ran.append("rerun"), log.append, "preparing")
    assert ran == ["rerun"] and time.monotonic() - t0 < 5.0  # far below the 60 s a killed owner would cost
    assert any("worker owner gave it up; taking over" in m for m in log)
