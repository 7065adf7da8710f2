"""Recurring polls: reconcile with the database, the scheduler's claimed push, forget."""

from __future__ import annotations

import time

import pytest
from rq import Queue
from rq.job import Job

from mailq import claims, keys, mailboxes, metrics, polling, schedule
from mailq.models import Mailbox
from mailq.poll import PollResult
from mailq.queues import connect
from mailq.scheduler import PollScheduler, Runner

from .helpers import run_cli


def make_mailbox(settings, name: str, interval: int = 60, priority: str = "normal", port: int = 143) -> Mailbox:
    spec = mailboxes.validate(
        name=name, host="127.0.0.1", port=port, security="plain", username=name, password="pw", interval=interval, priority=priority
    )
    return mailboxes.save(settings, spec)[0]


def zset(conn) -> dict[str, float]:
    return {m.decode(): s for m, s in conn.zrange(keys.SCHEDULED, 0, -1, withscores=True)}


def test_reconcile_gives_each_enabled_mailbox_exactly_one_entry_and_is_idempotent(settings):
    boxes = [make_mailbox(settings, f"m{i}", interval=30) for i in range(5)]
    mailboxes.set_paused(boxes[3], True)
    Mailbox.update(state="auth_error").where(Mailbox.id == boxes[4].id).execute()
    now = time.time()

    report = schedule.reconcile(settings)
    conn = connect(settings)
    assert sorted(report.added) == [b.id for b in boxes[:3]]
    entries = zset(conn)
    assert set(entries) == {f"mbx-{b.id}" for b in boxes[:3]}
    assert all(now - 1 <= s <= now + 31 for s in entries.values()), "first runs jittered across the interval"

    again = schedule.reconcile(settings)
    assert (again.added, again.removed, again.updated, again.unchanged) == ([], [], [], 3)
    assert zset(conn) == entries
    template = Job.fetch(f"mbx-{boxes[0].id}", connection=conn)
    assert template.func_name == "mailq.jobs.poll" and template.args == [boxes[0].id]
    assert conn.ttl(template.key) == -1, "the template never expires, so rq-scheduler never drops the entry"


def test_reconcile_removes_stale_entries_and_updates_changed_ones_keeping_the_next_run(settings):
    a, b, c = (make_mailbox(settings, n, interval=60) for n in "abc")
    schedule.reconcile(settings)
    conn = connect(settings)
    before = zset(conn)

    mailboxes.set_paused(a, True)
    Mailbox.update(interval=5).where(Mailbox.id == b.id).execute()
    Mailbox.update(priority="high").where(Mailbox.id == c.id).execute()
    diff = schedule.plan(settings)[0]
    assert (diff.stale, sorted(diff.changed)) == ([a.id], sorted([b.id, c.id]))

    report = schedule.reconcile(settings)
    assert report.removed == [f"mbx-{a.id}"] and sorted(report.updated) == sorted([b.id, c.id])
    after = zset(conn)
    assert f"mbx-{a.id}" not in after and not conn.exists(f"rq:job:mbx-{a.id}"), "cancel and delete the hash"
    assert after[f"mbx-{b.id}"] <= time.time() + 5 + 1, "a shorter interval pulls the next run in"
    assert after[f"mbx-{c.id}"] == before[f"mbx-{c.id}"]
    assert Job.fetch(f"mbx-{c.id}", connection=conn).origin == "email-high"
    assert Job.fetch(f"mbx-{b.id}", connection=conn).meta["interval"] == 5


def test_a_template_hash_without_its_entry_counts_as_missing(settings):
    box = make_mailbox(settings, "orphan")
    schedule.reconcile(settings)
    conn = connect(settings)
    conn.zrem(keys.SCHEDULED, f"mbx-{box.id}")  # what a bare rq-scheduler cancel() leaves
    assert schedule.reconcile(settings).added == [box.id]
    conn.delete(f"rq:job:mbx-{box.id}")  # the entry without its hash
    assert schedule.reconcile(settings).added == [box.id]


def test_a_backing_off_mailbox_gets_its_first_run_after_the_backoff(settings):
    from datetime import timedelta

    from mailq.models import utcnow

    box = make_mailbox(settings, "failing", interval=10)
    later = utcnow() + timedelta(seconds=300)
    Mailbox.update(state="failing", next_attempt_at=later).where(Mailbox.id == box.id).execute()
    schedule.reconcile(settings)
    assert zset(connect(settings))[f"mbx-{box.id}"] >= time.time() + 290


def _due_now(conn, *boxes):
    conn.zadd(keys.SCHEDULED, {f"mbx-{b.id}": int(time.time()) - 1 for b in boxes}, xx=True)


def test_the_scheduler_pushes_one_claimed_poll_per_mailbox_and_never_a_second_while_it_waits(settings):
    boxes = [make_mailbox(settings, f"p{i}", interval=1) for i in range(4)]
    high = make_mailbox(settings, "vip", interval=1, priority="high")
    schedule.reconcile(settings)
    conn = connect(settings)
    scheduler = PollScheduler(settings, conn)
    for _ in range(3):
        _due_now(conn, *boxes, high)
        scheduler.enqueue_jobs()
    email, email_high = Queue("email", connection=conn), Queue("email-high", connection=conn)
    assert email.count == 4 and email_high.count == 1
    assert (scheduler.pushed, scheduler.skipped) == (5, 10)
    for job in email.jobs:
        assert job.id.startswith(f"poll-{job.args[0]}-") and len(job.args) == 1, "ids only"
        assert claims.holder(conn, job.args[0]) == job.id
        assert job.ttl == claims.queued_ttl(settings), "claim and queued job expire together"
    assert all(s > time.time() for s in zset(conn).values()), "rescheduled even when the push was skipped"


def test_two_schedulers_never_double_enqueue(settings):
    boxes = [make_mailbox(settings, f"d{i}", interval=1) for i in range(10)]
    schedule.reconcile(settings)
    conn = connect(settings)
    first, second = Runner(settings), Runner(settings)
    for _ in range(5):
        _due_now(conn, *boxes)
        first.tick()
        second.tick()
    assert Queue("email", connection=conn).count == 10


def test_a_dead_claim_does_not_block_a_mailbox(settings):
    box = make_mailbox(settings, "dead")
    conn = connect(settings)
    job_id, new = claims.submit_poll(settings, box.id, "email")
    assert new and claims.submit_poll(settings, box.id, "email") == (job_id, False)
    Job.fetch(job_id, connection=conn).delete()  # e.g. a flushed Redis or an expired job: the claim outlived it
    second, new = claims.submit_poll(settings, box.id, "email")
    assert new and second != job_id and claims.holder(conn, box.id) == second


def test_forget_cancels_the_schedule_the_template_and_a_queued_poll(settings):
    box = make_mailbox(settings, "gone")
    schedule.reconcile(settings)
    job_id, _ = claims.submit_poll(settings, box.id, "email")
    schedule.forget(settings, box.id)
    conn = connect(settings)
    assert zset(conn) == {} and not conn.exists(f"rq:job:mbx-{box.id}")
    assert not conn.exists(f"rq:job:{job_id}") and Queue("email", connection=conn).count == 0
    assert claims.holder(conn, box.id) is None


def test_claims_are_compare_and_delete_and_renewal_retakes_a_vanished_claim(settings):
    conn = connect(settings)
    assert claims.claim(conn, 7, "a", 10) and not claims.claim(conn, 7, "b", 10)
    assert not claims.release(conn, 7, "b") and claims.holder(conn, 7) == "a"
    assert not claims.adopt(conn, 7, "b", 10)
    conn.flushdb()
    assert claims.adopt(conn, 7, "a", 10) and claims.holder(conn, 7) == "a"
    assert claims.release(conn, 7, "a") and claims.holder(conn, 7) is None


def test_schedule_sync_and_list_commands(settings, capsys):
    boxes = [make_mailbox(settings, f"c{i}", interval=45) for i in range(2)]
    result = run_cli(["schedule", "sync"], capsys)
    assert result.code == 0 and "added 2" in result.out
    result = run_cli(["schedule", "list", "--json"], capsys)
    import json

    listed = json.loads(result.out)
    assert {p["mailbox_id"] for p in listed} == {b.id for b in boxes}
    assert all(p["interval"] == 45 and p["next_run_at"].endswith("Z") for p in listed)
    assert run_cli(["schedule", "sync"], capsys).out.startswith("added 0, removed 0, updated 0, unchanged 2")


def test_pause_removes_the_schedule_and_resume_adds_it_back(settings, capsys):
    box = make_mailbox(settings, "pr")
    schedule.reconcile(settings)
    conn = connect(settings)
    assert run_cli(["mailbox", "pause", str(box.id)], capsys).code == 0
    assert zset(conn) == {}
    assert run_cli(["mailbox", "resume", str(box.id)], capsys).code == 0
    assert list(zset(conn)) == [f"mbx-{box.id}"]


def test_mailbox_commands_warn_but_succeed_when_redis_is_down(settings, capsys, redis_server):
    box = make_mailbox(settings, "offline")
    redis_server.stop()
    try:
        result = run_cli(["mailbox", "pause", str(box.id)], capsys)
    finally:
        redis_server.start()
    assert result.code == 0 and "warning: Redis unavailable" in result.err
    assert Mailbox.get_by_id(box.id).paused


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_removing_a_mailbox_cancels_its_schedule(settings, capsys):
    box = make_mailbox(settings, "rm")
    schedule.reconcile(settings)
    assert run_cli(["mailbox", "remove", str(box.id), "--yes"], capsys).code == 0
    assert zset(connect(settings)) == {}


def test_after_a_poll_the_schedule_moves_from_the_poll_result_alone(settings):
    box = make_mailbox(settings, "after", interval=60)
    schedule.reconcile(settings)
    conn = connect(settings)
    entry, started = f"mbx-{box.id}", time.time()
    schedule.after_poll(conn, PollResult(box.id, "ok", interval=60, queue="email"), started)
    assert zset(conn)[entry] >= started + 60, "no earlier than one interval after the poll started"
    schedule.after_poll(conn, PollResult(box.id, "error", interval=60, queue="email", retry_at=started + 600), started)
    assert zset(conn)[entry] >= started + 600, "not before the backoff ends"
    schedule.after_poll(conn, PollResult(box.id, "ok", interval=60, queue="email"), started)
    assert zset(conn)[entry] >= started + 600, "never pulled earlier"
    schedule.after_poll(conn, PollResult(box.id, "auth_error", interval=60, queue="email"), started)
    assert zset(conn) == {}, "parked after an authentication failure"
    schedule.after_poll(conn, PollResult(box.id, "ok", interval=60, queue="email"), started)
    assert zset(conn) == {}, "a removed entry is never re-created"


def test_adopting_a_claim_moves_the_schedule_only_when_the_claim_is_ours(settings):
    box = make_mailbox(settings, "adopt", interval=60)
    schedule.reconcile(settings)
    conn = connect(settings)
    entry, now = f"mbx-{box.id}", time.time()
    first = zset(conn)[entry]
    assert claims.claim(conn, box.id, "other", 30)
    assert not claims.adopt(conn, box.id, "ours", 10, defer_to=now + 3600)
    assert zset(conn)[entry] == first, "another owner's poll: the schedule is left alone"
    claims.release(conn, box.id, "other")
    assert claims.adopt(conn, box.id, "ours", 10, defer_to=now + 3600) and claims.holder(conn, box.id) == "ours"
    assert zset(conn)[entry] >= now + 3600
    assert claims.adopt(conn, box.id, "ours", 10, defer_to=now + 60) and zset(conn)[entry] >= now + 3600, "never pulled earlier"
    schedule.remove(conn, box.id)
    assert claims.adopt(conn, box.id, "ours", 10, defer_to=now + 60) and zset(conn) == {}, "a removed entry is never re-created"


def test_a_poll_ends_in_one_pipeline_even_after_redis_forgot_its_scripts(settings):
    """The poll's end queues the claim's release as a bare EVALSHA; after SCRIPT FLUSH (a Redis
    restart) that fails inside the pipeline and the release is sent again, loading the script."""
    box = make_mailbox(settings, "ends", interval=60)
    schedule.reconcile(settings)
    conn = connect(settings)
    for flush in (False, True):
        assert claims.adopt(conn, box.id, "tok", 10)
        if flush:
            conn.script_flush()
        started = time.time()
        polled = metrics.read(conn).get("c:polls:ok", 0)
        polling._end(conn, box.id, "tok", PollResult(box.id, "ok", interval=600, queue="email"), metrics.IngestCounter(None), started)
        assert claims.holder(conn, box.id) is None, "the claim is released"
        assert zset(conn)[f"mbx-{box.id}"] >= started + 600, "the schedule moved before it"
        assert metrics.read(conn)["c:polls:ok"] == polled + 1
