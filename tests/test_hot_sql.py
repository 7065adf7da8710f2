"""hot_sql's statements, built once per process, write what the peewee path writes (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from mailq import health, mailboxes
from mailq.models import Mailbox, PollRun, utcnow
from mailq.states import Outcome, State


def _mailbox(settings, name: str) -> Mailbox:
    spec = mailboxes.validate(name=name, host="127.0.0.1", port=143, security="plain", username=name, password="pw")
    return mailboxes.save(settings, spec)[0]


def _failing(mailbox: Mailbox) -> None:
    Mailbox.update(
        state=State.FAILING,
        consecutive_failures=3,
        last_error="timed out",
        last_error_class="timeout",
        next_attempt_at=utcnow() + timedelta(minutes=5),
    ).where(Mailbox.id == mailbox.id).execute()


def test_an_idle_polls_end_records_its_run_and_heals_the_mailbox_like_the_peewee_path(settings):
    a, b, other, untouched = (_mailbox(settings, f"hot-{n}") for n in ("a", "b", "other", "untouched"))
    for box in (a, b, other, untouched):
        _failing(box)

    idle = health.start_run(a.id, worker="w-1", record=False)
    assert health.finish_ok(idle, folders_checked=2) == Outcome.OK  # builds the statements
    partial = health.start_run(b.id, worker=None, record=False)
    assert health.finish_ok(partial, new=0, skipped=1, folders_checked=1, partial=True) == Outcome.PARTIAL  # reuses them

    opened = health.start_run(other.id, worker="w-2")  # a poll that found work takes peewee's path
    health.finish_ok(opened, new=4, folders_checked=1)

    runs = {r.mailbox_id: r for r in PollRun.select()}
    assert (runs[a.id].outcome, runs[a.id].folders_checked, runs[a.id].worker) == ("ok", 2, "w-1")
    assert (runs[b.id].outcome, runs[b.id].skipped_count, runs[b.id].worker) == ("partial", 1, None)
    assert runs[a.id].started_at == idle.started_at and runs[a.id].finished_at >= idle.started_at
    for box in (a, b, other):
        row = Mailbox.get_by_id(box.id)
        assert (row.state, row.consecutive_failures, row.last_error, row.last_error_class, row.next_attempt_at) == (
            "ok",
            0,
            None,
            None,
            None,
        )
        assert row.last_poll_at == row.last_success_at == row.updated_at
    assert runs[other.id].new_count == 4
    assert untouched.id not in runs and Mailbox.get_by_id(untouched.id).state == "failing"  # each statement binds its own row


def test_a_poll_with_a_bad_folder_still_takes_the_path_that_flags_it(settings):
    box = _mailbox(settings, "hot-folder")
    run = health.start_run(box.id, worker="w", record=False)
    assert health.finish_ok(run, folders_checked=2, folder_error="folder 'Nope': no such folder") == Outcome.ERROR
    row = Mailbox.get_by_id(box.id)
    assert (row.state, row.last_error_class, row.consecutive_failures) == ("failing", health.FOLDER_ERROR, 1)
