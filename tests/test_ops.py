"""The operations layer the CLI and the console share: queues, workers, failed jobs, mailboxes, actions."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker, Worker

from mailq import claims, mailboxes, ops, schedule
from mailq.errors import NotFoundError, QueueError
from mailq.models import Mailbox, PollRun, utcnow
from mailq.queues import connect


def boom(n: int) -> None:
    raise ValueError(f"boom {n}")


def make_mailbox(settings, name: str, **kw) -> Mailbox:
    spec = mailboxes.validate(name=name, host="imap.example.org", port=993, username=name, password="pw", **kw)
    return mailboxes.save(settings, spec)[0]


def fail_jobs(settings, counts: dict[str, int]) -> list[str]:
    """Really failed jobs (run by an in-process worker), ``counts`` per queue."""
    conn = connect(settings)
    ids = []
    for name, n in counts.items():
        q = Queue(name, connection=conn)
        ids += [q.enqueue(boom, i).id for i in range(n)]
        SimpleWorker([q], connection=conn).work(burst=True, logging_level="ERROR")
    return ids


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_failed_jobs_page_across_queues_without_reading_the_rest(settings):
    fail_jobs(settings, {"email": 130, "default": 40})
    page, total = ops.failed_jobs(settings, offset=0, limit=100)
    assert total == 170 and len(page) == 100 and {j.queue for j in page} == {"email"}
    page2, _ = ops.failed_jobs(settings, offset=100, limit=100)
    assert len(page2) == 70 and [j.queue for j in page2].count("default") == 40
    assert len({j.id for j in page + page2}) == 170
    job = page[0]
    assert job.function == "tests.test_ops.boom" and job.error_line.startswith("ValueError: boom")
    assert job.failed_at is not None and job.traceback is None
    detail = ops.failed_job(settings, job.id)
    assert "Traceback" in detail.traceback and "raise ValueError" in detail.traceback
    found, n = ops.failed_jobs(settings, search="boom 129")
    assert n == 1 and found[0].error_line == "ValueError: boom 129"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failed_job_is_found_by_id_beyond_the_search_window(settings, monkeypatch):
    from mailq.ops import failed

    ids = fail_jobs(settings, {"email": 30})
    monkeypatch.setattr(failed, "SEARCH_SCAN_CAP", 0)  # as if 20,000 newer failures filled the window
    oldest = ids[0]
    assert ops.failed_jobs(settings, search="boom")[1] == 0, "the substring search sees only its window"
    found, n = ops.failed_jobs(settings, search=f" {oldest} ")
    assert n == 1 and found[0].id == oldest and found[0].error_line == "ValueError: boom 0"


def test_requeue_and_delete_failed_jobs(settings):
    ids = fail_jobs(settings, {"default": 3})
    with pytest.raises(NotFoundError, match="nope"):
        ops.requeue_failed(settings, [ids[0], "nope"])
    assert ops.queue_stats(settings)[3].failed == 3, "nothing happens when an id is unknown"
    assert ops.requeue_failed(settings, [ids[0]]) == 1
    stats = {q.name: q for q in ops.queue_stats(settings)}
    assert (stats["default"].queued, stats["default"].failed) == (1, 2)
    assert ops.delete_failed(settings, [ids[1]]) == 1
    assert ops.requeue_all_failed(settings) == 1
    assert ops.failed_jobs(settings)[1] == 0


def test_queue_stats_are_in_worker_order(settings):
    conn = connect(settings)
    Queue("workflow", connection=conn).enqueue(boom, 1)
    stats = ops.queue_stats(settings)
    assert [q.name for q in stats] == ["email-high", "email", "workflow", "default"]
    assert stats[2].queued == 1 and stats[0].queued == 0


def test_workers_show_name_state_and_the_mailbox_being_polled(settings):
    box = make_mailbox(settings, "busybox")
    conn = connect(settings)
    job_id, _ = claims.submit_poll(settings, box.id, "email")
    worker = Worker([Queue("email", connection=conn)], connection=conn, name="w-test")
    worker.register_birth()
    from rq.job import Job

    worker.prepare_execution(Job.fetch(job_id, connection=conn))
    worker.set_state("busy")
    worker.heartbeat()
    try:
        (info,) = ops.workers(settings)
        assert (info.name, info.state, info.current_job_id) == ("w-test", "busy", job_id)
        assert (info.current_mailbox_id, info.current_mailbox_name) == (box.id, "busybox")
        assert not info.stale and info.heartbeat_age_s < 5
    finally:
        worker.register_death()


def test_poll_now_reuses_a_queued_poll_and_wait_times_out_without_workers(settings):
    a, b = make_mailbox(settings, "a"), make_mailbox(settings, "b", priority="high")
    first = ops.poll_now(settings, [a.id, b.id])
    assert ops.poll_now(settings, [a.id]) == first[:1]
    stats = {q.name: q.queued for q in ops.queue_stats(settings)}
    assert stats["email"] == 1 and stats["email-high"] == 1
    with pytest.raises(QueueError, match="timed out"):
        ops.poll_now(settings, [a.id], wait=True, timeout=0.3)
    with pytest.raises(NotFoundError):
        ops.poll_now(settings, [999])


def test_pause_and_resume_move_the_schedule(settings):
    box = make_mailbox(settings, "pausable")
    schedule.reconcile(settings)
    claims.submit_poll(settings, box.id, "email")
    ops.pause(settings, box.id)
    conn = connect(settings)
    assert schedule.count(conn) == 0 and Queue("email", connection=conn).count == 0
    assert claims.holder(conn, box.id) is None
    Mailbox.update(state="auth_error").where(Mailbox.id == box.id).execute()
    ops.resume(settings, box.id)
    assert schedule.count(conn) == 1 and Mailbox.get_by_id(box.id).state == "ok"


def test_mailbox_rows_filter_and_page_and_detail_lists_poll_runs(settings):
    boxes = [make_mailbox(settings, f"row{i}") for i in range(5)]
    mailboxes.set_paused(boxes[0], True)
    Mailbox.update(state="failing", last_error="down").where(Mailbox.id == boxes[1].id).execute()
    schedule.reconcile(settings)
    rows, total = ops.mailbox_rows(settings, offset=1, limit=2)
    assert total == 5 and [r.id for r in rows] == [boxes[1].id, boxes[2].id]
    assert rows[0].state == "failing" and rows[1].next_run_at is not None
    assert ops.mailbox_rows(settings, state="paused")[1] == 1
    assert ops.mailbox_rows(settings, text="ROW3")[0][0].id == boxes[3].id
    PollRun.create(mailbox=boxes[2], started_at=utcnow(), finished_at=utcnow(), outcome="ok", new_count=2)
    info, runs = ops.mailbox_detail(settings, boxes[2].id)
    assert info["name"] == "row2" and "secret" not in info and info["next_run_at"].endswith("Z")
    assert [(r.outcome, r.new_count) for r in runs] == [("ok", 2)]


def test_schedule_diff_and_resync(settings):
    box = make_mailbox(settings, "diff")
    assert ops.schedule_diff(settings).missing == [box.id]
    report = ops.resync(settings)
    assert report.added == [box.id] and ops.schedule_diff(settings).missing == []
    polls, total = ops.scheduled_polls(settings)
    assert total == 1 and polls[0].mailbox_name == "diff" and polls[0].interval == 60


def test_status_and_overview_shapes(settings):
    make_mailbox(settings, "s1")
    fail_jobs(settings, {"default": 1})
    data = ops.status(settings)
    assert set(data) >= {"mailboxes", "queues", "workers", "failed"}
    assert data["mailboxes"]["ok"] == 1 and data["failed"] == 1 and data["scheduler"]["alive"] is False
    view = ops.overview(settings)
    assert view.states["ok"] == 1 and view.failed_total == 1 and len(view.ingest_per_minute) == 60
    assert view.redis_error is None and view.database_error is None


def test_overview_degrades_when_redis_is_down(settings, redis_server):
    make_mailbox(settings, "s2")
    redis_server.stop()
    try:
        view = ops.overview(settings)
    finally:
        redis_server.start()
    assert view.redis_error and "Redis unavailable" in view.redis_error
    assert view.states["ok"] == 1 and view.database_error is None
