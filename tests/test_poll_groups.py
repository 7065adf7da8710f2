"""Several due mailboxes in one RQ job: each still polled as if alone, and none held up or failed by another."""

from __future__ import annotations

from rq import Queue
from rq.registry import FailedJobRegistry

from mailq import claims, db, keys, mailboxes, polling, schedule, worker
from mailq.models import Message, PollRun
from mailq.queues import connect
from mailq.scheduler import groups
from tests.impostor import Impostor

from .farm_helpers import add_mailboxes, farm  # noqa: F401
from .helpers import wait_for


def _runs(mailbox_id: int) -> list[PollRun]:
    try:
        return list(PollRun.select().where(PollRun.mailbox == mailbox_id).order_by(PollRun.id))
    finally:
        db.close()


def _stored(mailbox_id: int) -> int:
    try:
        return Message.select().where(Message.mailbox == mailbox_id).count()
    finally:
        db.close()


def test_groups_start_only_when_a_queue_has_more_due_polls_than_a_group_holds():
    assert groups([1, 2, 3], 10, workers=5) == [[1], [2], [3]], "a small farm keeps one job per poll"
    assert groups(list(range(25)), 10, workers=0) == [list(range(8)), list(range(8, 16)), list(range(16, 25))]
    spread = groups(list(range(12)), 10, workers=5)
    assert len(spread) == 5 and sorted(m for g in spread for m in g) == list(range(12)), "at least one job per worker"
    assert groups(list(range(30)), 1, workers=2) == [[m] for m in range(30)], "MAILQ_POLL_GROUP_SIZE=1: never grouped"


def test_a_group_polls_each_mailbox_under_its_own_claim_and_records_each_poll(settings, dovecot):
    counts = [2, 0, 3, 1]
    boxes = [m for m, _, _ in add_mailboxes(settings, dovecot, "grp", counts)]
    ids = [m.id for m in boxes]
    schedule.reconcile(settings)
    conn = connect(settings)

    assert claims.submit_group(settings, conn, ids, "email") == ids
    (job,) = Queue("email", connection=conn).jobs
    assert job.func_name == keys.POLL_GROUP_JOB and job.args == (ids,), "ids only"
    assert {claims.holder(conn, m) for m in ids} == {job.id}, "every mailbox claimed by the group's job"
    assert claims.submit_group(settings, conn, ids, "email") == [], "no second poll while the group waits"

    worker.run(settings, burst=True, name="grp-w")
    for box, count in zip(boxes, counts):
        runs = _runs(box.id)
        assert [r.outcome for r in runs] == ["ok"], (box.name, runs)
        assert _stored(box.id) == count
    assert claims.holders(conn, ids) == {}, "every claim released"
    assert FailedJobRegistry("email", connection=conn).count == 0


def test_a_poll_that_crashes_in_a_group_fails_alone_in_the_failed_registry_and_its_mates_are_polled(settings, dovecot, monkeypatch):
    boxes = [m for m, _, _ in add_mailboxes(settings, dovecot, "crash", [1, 1, 1])]
    bad = boxes[1].id
    real = polling.poll_mailbox

    def poll_with_a_bug(settings, mailbox_id, **kwargs):
        if mailbox_id == bad:
            raise RuntimeError("a bug in this mailbox's poll")
        return real(settings, mailbox_id, **kwargs)

    monkeypatch.setattr(polling, "poll_mailbox", poll_with_a_bug)  # fault injection: the worker runs in this process
    conn = connect(settings)
    claims.submit_group(settings, conn, [b.id for b in boxes], "email")
    worker.run(settings, burst=True, name="crash-w")

    for box in boxes:
        if box.id != bad:
            assert [r.outcome for r in _runs(box.id)] == ["ok"] and _stored(box.id) == 1
    failed = FailedJobRegistry("email", connection=conn)
    jobs = [failed.job_class.fetch(j, connection=conn) for j in failed.get_job_ids()]
    assert [(j.func_name, j.args) for j in jobs] == [(keys.POLL_JOB, (bad,))], "the crash is its own failed poll job"
    assert "a bug in this mailbox's poll" in jobs[0].latest_result().exc_string
    assert claims.holders(conn, [b.id for b in boxes]) == {}


def test_a_hung_server_holds_up_its_group_mates_only_for_the_patience_then_they_move_on(settings, dovecot, farm):
    healthy = [m for m, _, _ in add_mailboxes(settings, dovecot, "mate", [1, 1, 1])]
    with Impostor("silent").start() as silent:
        hung = mailboxes.save(
            settings,
            mailboxes.validate(name="hung", host="127.0.0.1", port=silent.port, security="plain", username="u", password="p"),
        )[0]
        db.close()
        farm.configure(MAILQ_POLL_GROUP_PATIENCE=1, MAILQ_CONNECT_TIMEOUT=10)
        farm.worker("patience-w0")
        farm.worker("patience-w1")
        conn = connect(settings)
        ids = [hung.id] + [m.id for m in healthy]  # the hung one is polled first
        assert claims.submit_group(settings, conn, ids, "email") == ids

        wait_for(lambda: all(_stored(m.id) == 1 for m in healthy), timeout=30, what="the mates' mail")
        wait_for(lambda: [r.outcome for r in _runs(hung.id)] == ["error"], timeout=30, what="the hung poll's timeout")
    farm.assert_alive()
    (hung_run,) = _runs(hung.id)
    assert hung_run.error_class == "timeout"
    for mate in healthy:
        (run,) = _runs(mate.id)
        assert run.outcome == "ok" and run.finished_at < hung_run.finished_at, "the mates did not wait for the hung server"
    assert claims.holders(conn, ids) == {}
