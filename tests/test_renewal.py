"""The claim renewer: one thread per process keeps running polls' claims alive (real Redis)."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from mailq import claims, keys, renewal
from mailq.errors import LockLost
from tests.helpers import wait_for


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_a_claim_outlives_its_ttl_while_its_poll_runs_and_is_released_after(conn, monkeypatch):
    monkeypatch.setattr(renewal, "TICK", 0.1)
    assert claims.adopt(conn, 1, "poll-1-a", 1)
    with renewal.Renewer(conn, 1, "poll-1-a", 1):
        start = time.monotonic()

        def held_for_three_ttls() -> bool:
            assert claims.holder(conn, 1) == "poll-1-a", "the claim lapsed while its poll ran"
            return time.monotonic() - start > 3

        wait_for(held_for_three_ttls, timeout=5, what="three TTLs of a held claim")
    assert claims.release(conn, 1, "poll-1-a")
    assert claims.holder(conn, 1) is None


def test_no_thread_is_started_per_poll(conn):
    with renewal.Renewer(conn, 2, "poll-2-a", 30):
        pass  # the process's renewer thread exists from here on
    threads = threading.active_count()
    for i in range(50):
        assert claims.adopt(conn, 2, f"poll-2-{i}", 30)
        with renewal.Renewer(conn, 2, f"poll-2-{i}", 30) as claim:
            claim.check()
        claims.release(conn, 2, f"poll-2-{i}")
    assert threading.active_count() == threads
    assert [t.name for t in threading.enumerate()].count("mailq-claims") == 1


def test_check_raises_once_another_poll_took_the_mailbox(conn, monkeypatch):
    monkeypatch.setattr(renewal, "CHECK_EVERY", 0.0)
    assert claims.adopt(conn, 3, "poll-3-a", 30)
    with renewal.Renewer(conn, 3, "poll-3-a", 30) as claim:
        claim.check()  # still ours
        conn.set(keys.poll_claim(3), "poll-3-b", px=30000)  # our claim expired and another poll took it
        with pytest.raises(LockLost, match="another poll took over"):
            claim.check()
    assert claims.holder(conn, 3) == "poll-3-b"  # never touched by the loser
