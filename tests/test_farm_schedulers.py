"""No pile-up, no overlap: two schedulers, and a farm with too few workers."""

from __future__ import annotations

import pytest
from rq import Queue

from mailq import keys
from mailq.queues import connect

from .farm_helpers import add_mailboxes, farm, next_scheduler_pass, overlapping_runs, runs_of  # noqa: F401
from .helpers import wait_for

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def test_two_schedulers_never_poll_a_mailbox_more_often_than_its_interval_nor_twice_at_once(settings, dovecot, farm):
    interval = 2
    boxes = add_mailboxes(settings, dovecot, "two", [3] * 12, interval=interval)
    ids = [m.id for m, _, _ in boxes]
    farm.scheduler("scheduler-a")
    farm.scheduler("scheduler-b")
    farm.worker("two-w0")
    farm.worker("two-w1")

    wait_for(lambda: all(len(runs_of(m)) >= 4 for m in ids), timeout=60, what="four polls of every mailbox")
    farm.assert_alive()
    assert overlapping_runs(ids) == []
    for mid in ids:
        starts = [r.started_at for r in runs_of(mid)]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
        assert min(gaps) >= interval - 0.05, (mid, gaps)


def test_with_too_few_workers_the_email_queue_never_holds_more_polls_than_mailboxes(settings, dovecot, farm):
    boxes = add_mailboxes(settings, dovecot, "few", [1] * 40, interval=1)
    farm.scheduler()
    farm.worker("few-w0")
    conn = connect(settings)
    lengths = []
    last = 0
    while len(lengths) < 40:  # once after each of 40 scheduler passes (0.2 s each): every mailbox fires ~8 times
        last = next_scheduler_pass(settings, last)
        lengths.append(queued_polls(conn))
    farm.assert_alive()
    assert max(lengths) <= len(boxes)
    assert max(lengths) >= len(boxes) // 2, "the test must actually overload the worker"


def queued_polls(conn) -> int:
    """Polls waiting in the email queue: a group job (several due mailboxes) counts each of its mailboxes."""
    jobs = Queue("email", connection=conn).jobs
    return sum(len(job.args[0]) if job.func_name == keys.POLL_GROUP_JOB else 1 for job in jobs)
