"""Poll-run records and the mailbox health state machine.

States: ``ok``; ``failing`` (transient trouble: DNS, refused, timeout, BYE —
retried with capped exponential backoff plus jitter, so a flaky server is not
hammered and 1,000 mailboxes don't retry in lockstep); ``auth_error`` (the
server rejected the credentials once: no more logins until they change or an
operator resumes, because servers lock accounts that keep failing). Pausing is
the operator's flag on the mailbox, not a health state.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from . import hot_sql
from .config import Settings
from .db import database, errors_as_mailq
from .errors import AuthError, MailqError
from .models import Mailbox, PollRun, utcnow
from .states import Outcome, State
from .text import one_line

FOLDER_ERROR = "folder"
"""error_class of a poll where only some folders failed (e.g. a folder that does not exist)."""


def backoff_seconds(settings: Settings, failures: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``failures``: base * 2**(failures-1), capped, with +-20% jitter."""
    if failures <= 0:
        return 0.0
    delay = min(settings.backoff_max, settings.backoff_base * 2 ** min(failures - 1, 30))
    jitter = (rng or random).uniform(0.8, 1.2)
    return min(settings.backoff_max, delay * jitter)


def is_due(mailbox: Mailbox, now: datetime | None = None) -> bool:
    """Whether a poll should log in to ``mailbox`` now: not paused, not parked, not backing off."""
    return mailbox.is_due(now)


def start_run(mailbox_id: int, worker: str | None = None, *, record: bool = True) -> PollRun:
    """A poll run (outcome ``running`` until it finishes); with ``record=False`` it is not inserted yet.

    An idle poll (nothing changed on the server) then costs one write
    transaction in all, at its end: the finished row plus the mailbox's health.
    A poll that finds work calls ``open_run`` first, so a long poll shows as
    ``running`` (and a killed one becomes ``abandoned``) as before.
    """
    run = PollRun(mailbox=mailbox_id, started_at=utcnow(), outcome=Outcome.RUNNING, worker=worker)
    if record:
        open_run(run)
    return run


def open_run(run: PollRun) -> None:
    """Insert a not-yet-recorded run as ``running`` (once; later calls do nothing)."""
    if run.id is None:
        with errors_as_mailq():
            run.save(force_insert=True)


def _finish(
    run: PollRun, outcome: str, new: int, skipped: int, folders_checked: int, error_class: str | None = None, error_text: str | None = None
) -> None:
    run.finished_at = utcnow()
    run.outcome = outcome
    run.new_count, run.skipped_count, run.folders_checked = new, skipped, folders_checked
    run.error_class, run.error_text = error_class, error_text
    run.save()


def finish_ok(
    run: PollRun, *, new: int = 0, skipped: int = 0, folders_checked: int = 0, partial: bool = False, folder_error: str | None = None
) -> str:
    """Close a poll that reached the server; the mailbox becomes ``ok`` (or stays flagged for a bad folder).

    ``folder_error`` (some folders failed, others synced) records outcome
    ``error`` and state ``failing`` so an operator sees it, but sets no backoff:
    the healthy folders keep their normal cadence. Returns the outcome.
    """
    now = utcnow()
    outcome = Outcome.ERROR if folder_error else (Outcome.PARTIAL if partial else Outcome.OK)
    if run.id is None and not folder_error:  # never recorded as running: an idle poll, the hot path
        hot_sql.finish_clean_poll(run.mailbox_id, run.started_at, now, outcome, new, skipped, folders_checked, run.worker)
        return outcome
    with errors_as_mailq(), database.atomic():
        _finish(run, outcome, new, skipped, folders_checked, FOLDER_ERROR if folder_error else None, folder_error)
        changes = {Mailbox.last_poll_at: now, Mailbox.last_success_at: now, Mailbox.next_attempt_at: None, Mailbox.updated_at: now}
        if folder_error:
            changes.update(
                {
                    Mailbox.state: State.FAILING,
                    Mailbox.last_error: folder_error,
                    Mailbox.last_error_class: FOLDER_ERROR,
                    Mailbox.consecutive_failures: Mailbox.consecutive_failures + 1,
                }
            )
        else:
            changes.update(
                {Mailbox.state: State.OK, Mailbox.consecutive_failures: 0, Mailbox.last_error: None, Mailbox.last_error_class: None}
            )
        Mailbox.update(changes).where(Mailbox.id == run.mailbox_id).execute()
    return outcome


def error_class_of(error: BaseException) -> str:
    return error.kind if isinstance(error, MailqError) else f"bug:{type(error).__name__}"


def finish_error(
    run: PollRun,
    error: BaseException,
    settings: Settings,
    *,
    new: int = 0,
    skipped: int = 0,
    folders_checked: int = 0,
    rng: random.Random | None = None,
) -> tuple[str, datetime | None]:
    """Close a failed poll and move the mailbox to ``auth_error`` or ``failing`` (with backoff).

    An unexpected exception (a bug) also backs off, so a poison state cannot spin
    a worker. Returns the outcome (``auth_error`` or ``error``) and the end of the
    backoff (None after an authentication failure: no retry at all).
    """
    now = utcnow()
    text = one_line(str(error) or type(error).__name__, limit=1000)
    error_class = error_class_of(error)
    with errors_as_mailq(), database.atomic():
        mailbox = Mailbox.get_by_id(run.mailbox_id)
        if isinstance(error, AuthError):
            outcome, state, next_at = Outcome.AUTH_ERROR, State.AUTH_ERROR, None
            failures = mailbox.consecutive_failures + 1
        else:
            outcome, state = Outcome.ERROR, State.FAILING
            failures = mailbox.consecutive_failures + 1
            next_at = now + timedelta(seconds=backoff_seconds(settings, failures, rng))
        _finish(run, outcome, new, skipped, folders_checked, error_class, text)
        Mailbox.update(
            {
                Mailbox.state: state,
                Mailbox.consecutive_failures: failures,
                Mailbox.next_attempt_at: next_at,
                Mailbox.last_poll_at: now,
                Mailbox.last_error: text,
                Mailbox.last_error_class: error_class,
                Mailbox.updated_at: now,
            }
        ).where(Mailbox.id == run.mailbox_id).execute()
    return outcome, next_at


def finish_interrupted(run: PollRun, error: BaseException) -> None:
    """Best-effort close of a poll the database failed under; the mailbox's health is not its fault."""
    try:
        with errors_as_mailq():
            run.finished_at, run.outcome = utcnow(), Outcome.ERROR
            run.error_class, run.error_text = error_class_of(error), one_line(str(error), limit=1000)
            run.save()
    except MailqError:
        pass


def close_abandoned(older_than: timedelta) -> int:
    """Mark poll runs still ``running`` long after any poll could (a killed worker) as ``abandoned``."""
    cutoff = utcnow() - older_than
    with errors_as_mailq():
        return (
            PollRun.update(
                finished_at=utcnow(),
                outcome=Outcome.ABANDONED,
                error_class=Outcome.ABANDONED,
                error_text="the worker running this poll died; the next poll picks up where it stopped",
            )
            .where((PollRun.outcome == Outcome.RUNNING) & (PollRun.started_at < cutoff))
            .execute()
        )


def end_backoff(mailbox_id: int) -> bool:
    """The server answered a login again (an idler reconnected): the next poll need not wait out the backoff.

    Only a transient failure's backoff ends; ``auth_error`` stays parked. Returns whether one ended.
    """
    now = utcnow()
    with errors_as_mailq():
        changed = (
            Mailbox.update({Mailbox.next_attempt_at: now, Mailbox.updated_at: now})
            .where((Mailbox.id == mailbox_id) & (Mailbox.state == "failing") & (Mailbox.next_attempt_at > now))
            .execute()
        )
    return bool(changed)
