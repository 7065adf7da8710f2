"""The farm heals itself: flushed Redis, a server down and back, bad credentials, a killed worker."""

from __future__ import annotations

import signal
import time

import pytest

from mailq import ops, schedule
from mailq.models import Mailbox, PollRun
from mailq.queues import connect
from tests.testbed.dovecot import Dovecot, free_port
from tests.testbed.mailgen import make_messages

from .farm_helpers import add_mailboxes, duplicates, farm, runs_of, scheduler_passes, stored  # noqa: F401
from .helpers import mailbox_add_args, run_cli, wait_for

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def scheduled(settings) -> int:
    return schedule.count(connect(settings))


def test_a_flushed_redis_is_rescheduled_within_one_reconcile_period_and_polling_resumes(settings, dovecot, farm):
    boxes = add_mailboxes(settings, dovecot, "flush", [2] * 10, interval=1)
    ids = [m.id for m, _, _ in boxes]
    farm.configure(MAILQ_RECONCILE_INTERVAL=2)
    farm.scheduler()
    farm.worker("flush-w0")
    farm.worker("flush-w1")
    wait_for(lambda: stored(ids) == 20, timeout=60, what="first ingest")

    connect(settings).flushdb()
    flushed_at = time.monotonic()
    wait_for(lambda: scheduled(settings) == 10, timeout=10, what="every mailbox scheduled again")
    assert time.monotonic() - flushed_at <= 2 + 1.5, "within one reconcile period (plus one scheduler pass)"

    dovecot.deliver_many([(user, raw) for _, user, _ in boxes for raw in make_messages(1, seed=99)])
    wait_for(lambda: stored(ids) == 30, timeout=60, what="mail delivered after the flush")
    farm.assert_alive()
    assert duplicates() == []


def test_a_wrong_password_costs_one_login_then_parks_the_mailbox_until_it_is_fixed(settings, dovecot, farm, capsys):
    ((box, user, password),) = add_mailboxes(settings, dovecot, "auth", [3], interval=1, password="wrong")
    farm.scheduler()
    farm.worker("auth-w0")
    wait_for(lambda: Mailbox.get_by_id(box.id).state == "auth_error", timeout=30, what="auth_error")
    wait_for(lambda: dovecot.login_attempts(user) >= 1, timeout=10, what="the attempt in Dovecot's log")
    passes = scheduler_passes(settings)  # 15 passes of 0.2 s: three intervals in which a naive scheduler would have retried
    wait_for(lambda: scheduler_passes(settings) >= passes + 15, timeout=30, what="15 more scheduler passes")
    assert dovecot.login_attempts(user) == 1
    assert scheduled(settings) == 0 and stored([box.id]) == 0

    result = run_cli(mailbox_add_args(box.name, dovecot.imap_port, user, "--interval", "1"), capsys, stdin=password + "\n")
    assert result.code == 0, result.err
    wait_for(lambda: stored([box.id]) == 3, timeout=30, what="polling resumed with the new password")
    assert Mailbox.get_by_id(box.id).state == "ok"


def test_a_server_down_and_back_makes_mailboxes_fail_back_off_and_recover_with_nothing_lost(settings, farm, tmp_path):
    server = Dovecot(tmp_path / "dovecot", imap_port=free_port(), imaps_port=free_port())
    server.start()
    try:
        boxes = add_mailboxes(settings, server, "down", [2] * 5, interval=1)
        ids = [m.id for m, _, _ in boxes]
        farm.configure(MAILQ_BACKOFF_BASE=1, MAILQ_BACKOFF_MAX=2, MAILQ_CONNECT_TIMEOUT=1)
        farm.scheduler()
        farm.worker("down-w0")
        wait_for(lambda: stored(ids) == 10, timeout=60, what="first ingest")

        server.stop()
        server.deliver_many([(user, raw) for _, user, _ in boxes for raw in make_messages(2, seed=7)])
        wait_for(lambda: all(Mailbox.get_by_id(m).state == "failing" for m in ids), timeout=30, what="all failing")
        wait_for(lambda: all(Mailbox.get_by_id(m).consecutive_failures >= 2 for m in ids), timeout=30, what="retries with backoff")
        backoffs = [Mailbox.get_by_id(m).next_attempt_at for m in ids]
        assert all(b is not None for b in backoffs)

        server.start()
        wait_for(lambda: stored(ids) == 20, timeout=60, what="recovery without an operator")
        wait_for(lambda: all(Mailbox.get_by_id(m).state == "ok" for m in ids), timeout=30, what="all ok again")
        farm.assert_alive()
        assert duplicates() == []
        errors = PollRun.select().where(PollRun.mailbox.in_(ids) & (PollRun.outcome == "error")).count()
        assert errors >= 2 * len(ids)
    finally:
        farm.stop_all()
        server.stop()


def test_a_worker_killed_mid_poll_loses_nothing_and_the_mailbox_is_polled_again(settings, dovecot, farm):
    ((box, user, _),) = add_mailboxes(settings, dovecot, "kill", [600], interval=1, max_bytes=8_000)
    farm.configure(MAILQ_LOCK_TTL=5, MAILQ_FETCH_BATCH=5)
    farm.scheduler()
    workers = {name: farm.worker(name) for name in ("kill-w0", "kill-w1")}

    wait_for(lambda: 0 < stored([box.id]) < 300, timeout=60, interval=0.01, what="a poll half way")
    busy = [w for w in ops.workers(settings) if w.current_mailbox_id == box.id]
    assert len(busy) == 1, busy
    farm.kill(workers[busy[0].name], signal.SIGKILL)
    killed_at = time.monotonic()
    stored_at_kill = stored([box.id])

    wait_for(lambda: stored([box.id]) == 600, timeout=90, what="every message after the kill")
    assert time.monotonic() - killed_at >= 5 - 1.5 or stored_at_kill == 600, "the claim had to expire first"
    assert duplicates() == []
    wait_for(lambda: runs_of(box.id)[-1].finished_at is not None, timeout=30, what="the second poll to finish")
    runs = runs_of(box.id)
    assert runs[-1].outcome in ("ok", "partial")
    assert any(r.finished_at is None for r in runs), "the killed run never finished"
