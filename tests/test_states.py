"""States and outcomes are declared once (string enums), and "enabled"/"due" is one rule in Python and SQL."""

from __future__ import annotations

from datetime import timedelta

from mailq import errors, health
from mailq.errors import MailqError
from mailq.models import Mailbox, PollRun, utcnow
from mailq.states import DISPLAY_STATES, Outcome, State

from .test_schedule import make_mailbox


def test_members_are_their_stored_text():
    assert [str(s) for s in State] == ["ok", "failing", "auth_error"]
    assert State.AUTH_ERROR == "auth_error" and f"{Outcome.PARTIAL}" == "partial"
    assert DISPLAY_STATES == ("ok", "failing", "auth_error", "paused")


def test_the_enabled_rule_agrees_in_python_and_sql(settings):
    boxes = {}
    for paused in (False, True):
        for state in State:
            box = make_mailbox(settings, f"{state}-{paused}")
            Mailbox.update(state=state, paused=paused).where(Mailbox.id == box.id).execute()
            boxes[box.id] = Mailbox.get_by_id(box.id)
    in_sql = {m.id for m in Mailbox.select(Mailbox.id).where(Mailbox.enabled_clause())}
    assert in_sql == {i for i, m in boxes.items() if m.enabled}
    assert len(in_sql) == 2, "ok and failing, not paused"


def test_due_means_enabled_and_not_backing_off(settings):
    box = make_mailbox(settings, "due")
    now = utcnow()
    assert health.is_due(box, now)
    box.next_attempt_at = now + timedelta(seconds=30)
    assert not health.is_due(box, now) and health.is_due(box, now + timedelta(seconds=31))
    box.next_attempt_at, box.paused = None, True
    assert not health.is_due(box, now)


def test_stored_outcomes_read_back_as_plain_text(settings):
    box = make_mailbox(settings, "runs")
    run = health.start_run(box.id)
    assert PollRun.get_by_id(run.id).outcome == "running"


def test_every_error_class_lives_in_errors_py_with_a_kind():
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, MailqError) and c not in (MailqError, errors.ImapError)
    ]
    missing = [c.__name__ for c in classes if c not in errors._KINDS]
    assert not missing, f"no kind for {missing}"
    assert errors.StorageError("disk full").kind == "storage" and errors.DispatchError("x").kind == "dispatch"
    assert issubclass(errors.InvalidMailbox, errors.UsageError) and issubclass(errors.LockLost, MailqError)
