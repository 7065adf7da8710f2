"""Due polls are enqueued in due order, ties by mailbox id as a number (not Redis' string order of members)."""

from __future__ import annotations

import time

from rq import Queue

from mailq import keys, mailboxes, schedule
from mailq.queues import connect
from mailq.scheduler import PollScheduler


def test_due_polls_are_enqueued_in_due_order_then_by_numeric_mailbox_id(settings):
    ids = [
        mailboxes.save(
            settings,
            mailboxes.validate(name=f"m{i}", host="127.0.0.1", port=143, security="plain", username=f"m{i}", password="pw", interval=60),
        )[0].id
        for i in range(30)
    ]
    assert len(schedule.reconcile(settings).added) == 30
    conn = connect(settings)
    now = int(time.time())
    early = [ids[25], ids[12]]  # due a few seconds before the rest, which all share one score
    conn.zadd(keys.SCHEDULED, {keys.schedule_entry(i): now - 5 for i in ids}, xx=True)
    conn.zadd(keys.SCHEDULED, {keys.schedule_entry(ids[25]): now - 9, keys.schedule_entry(ids[12]): now - 8}, xx=True)
    redis_order = [keys.mailbox_of_entry(m.decode()) for m in conn.zrange(keys.SCHEDULED, 2, -1)]
    assert redis_order != sorted(redis_order)  # string order: 1, 10, 11, ... 19, 2, 20, ...

    PollScheduler(settings, conn).enqueue_jobs()
    jobs = Queue("email", connection=conn).jobs
    assert [job.func_name for job in jobs] == [keys.POLL_GROUP_JOB] * 3, "30 due polls, groups of 10 (no worker registered)"
    order = [mailbox_id for job in jobs for mailbox_id in job.args[0]]
    assert order == early + sorted(i for i in ids if i not in early)


def test_failing_mailboxes_poll_only_within_their_slots_and_a_dead_holders_slot_frees_itself(settings):
    from mailq import retry_slots
    from mailq.models import Mailbox

    one = settings.replace(failing_poll_slots=1)
    conn = connect(settings)
    failing = [Mailbox(id=i, state="failing", consecutive_failures=3, last_error_class="timeout") for i in (1, 2)]
    healthy = Mailbox(id=3, state="ok", consecutive_failures=0)
    hiccup = Mailbox(id=4, state="failing", consecutive_failures=1, last_error_class="connection")
    bad_folder = Mailbox(id=5, state="failing", consecutive_failures=9, last_error_class="folder")
    with retry_slots.slot(one, conn, failing[0]) as first:
        with retry_slots.slot(one, conn, failing[1]) as second, retry_slots.slot(one, conn, healthy) as ok:
            assert (first, second, ok) == (True, False, True)
            with retry_slots.slot(one, conn, hiccup) as a, retry_slots.slot(one, conn, bad_folder) as b:
                assert a and b
            timed_out = Mailbox(id=6, state="failing", consecutive_failures=1, last_error_class="timeout")
            with retry_slots.slot(one, conn, timed_out) as c:
                assert not c  # a timeout is what holds workers: gated from the first one
    with retry_slots.slot(one, conn, failing[1]) as again:
        assert again  # released on exit
    conn.zadd(retry_slots.KEY, {"killed-worker": time.time() - 1})  # a holder that died: its expiry has passed
    with retry_slots.slot(one, conn, failing[0]) as after_death:
        assert after_death
