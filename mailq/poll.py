"""One poll of one mailbox: the entry point of the farm's job and of ``mailq poll --inline``.

IMAP and authentication failures are outcomes, not exceptions: they are
recorded (poll run + health) and returned. A bug is recorded too and then
re-raised, so RQ keeps the traceback in its failed registry. Database errors
propagate: nothing can be recorded without the database.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC
from typing import Any

from . import health, hot_sql, imap
from .config import Settings
from .errors import DatabaseError, ImapConnectionError, ImapTimeoutError, MailqError, NotFoundError, ProtocolError
from .models import Mailbox
from .queues import poll_queue_name
from .states import PAUSED, Outcome, State
from .storage import open_store
from .sync import Budget, sync_folder
from .text import literal, one_line

log = logging.getLogger(__name__)


_SCHEDULE = {"metadata": {"schedule": True}}


@dataclass
class PollResult:
    """What a poll did; ``as_dict()`` is the stable ``--json`` shape.

    The last three fields are what the schedule needs afterwards (see
    ``schedule.after_poll``), read with the mailbox row at the start of the
    poll; they stay out of ``as_dict()``.
    """

    mailbox_id: int
    outcome: str  # an Outcome: ok | partial (budget hit, more pending) | error | auth_error | skipped
    folders_checked: int = 0
    new: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    error_class: str | None = None
    error_text: str | None = None
    more_pending: bool = False
    interval: int | None = field(default=None, **_SCHEDULE)
    queue: str | None = field(default=None, **_SCHEDULE)
    retry_at: float | None = field(default=None, **_SCHEDULE)  # epoch seconds: a backoff ends then

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("schedule")}
        data["duration_s"] = round(self.duration_s, 3)
        return data


def _state_after(result: PollResult) -> str:
    """The health state a finished poll leaves (see ``health.finish_ok``/``finish_error``)."""
    if result.outcome == "auth_error":
        return "auth_error"
    return "failing" if result.outcome == "error" or result.error_text else "ok"


def log_outcome(result: PollResult, name: str, state_before: str) -> None:
    """One line per poll, and only when something happened: new mail, an error, a change of health state.

    An idle poll of a healthy mailbox logs nothing at INFO (most polls are idle);
    at DEBUG every poll has its line.
    """
    state = _state_after(result)
    fields = {"mailbox_id": result.mailbox_id, "outcome": result.outcome, "new": result.new, "state": state}
    text = f"mailbox {result.mailbox_id} ({literal(name)}): {result.outcome}, {result.new} new, {result.duration_s:.2f}s"
    if state != state_before:
        text += f", {state_before} -> {state}"
    if result.error_text:
        fields["error_class"] = result.error_class
        text += f": {one_line(result.error_text)}"
    if result.outcome in ("error", "auth_error"):
        level = logging.WARNING
    elif result.new or state != state_before or result.error_text:
        level = logging.INFO
    else:
        level = logging.DEBUG
    log.log(level, "%s", text, extra=fields)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _skip_reason(mailbox: Mailbox, force: bool) -> str | None:
    if not mailbox.enabled:
        return PAUSED if mailbox.paused else f"{State.AUTH_ERROR}: credentials were rejected; change them or resume the mailbox"
    if not force and not mailbox.is_due():
        return f"backing off until {mailbox.next_attempt_at.isoformat()}Z after {mailbox.consecutive_failures} failure(s)"
    return None


def poll_mailbox(
    settings: Settings,
    mailbox_id: int,
    *,
    on_batch: Callable[[list[int]], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    force: bool = False,
    mailbox: Mailbox | None = None,
) -> PollResult:
    """Poll every folder of ``mailbox_id`` once, within the poll budget.

    ``on_batch(ids)`` runs after each batch commits, with the new rows' ids;
    ``heartbeat()`` runs between batches and folders (lock renewal).
    ``force`` polls even while backing off (an operator's "poll now"), never a
    paused or auth_error mailbox. ``mailbox``: its row, if the caller has just read it (saves a query).
    """
    started = time.monotonic()
    if mailbox is None or mailbox.id != mailbox_id:
        mailbox = hot_sql.mailbox(mailbox_id)
    if mailbox is None:
        raise NotFoundError(f"no mailbox with id {mailbox_id}: see `mailq mailbox list`")
    for_schedule = {"interval": mailbox.interval, "queue": poll_queue_name(mailbox.priority)}
    reason = _skip_reason(mailbox, force)
    if reason:
        return PollResult(mailbox_id, Outcome.SKIPPED, error_text=reason, duration_s=time.monotonic() - started, **for_schedule)

    run = health.start_run(mailbox.id, worker=_worker_name(), record=False)  # inserted at the end, or once work is found
    result = PollResult(mailbox_id, Outcome.RUNNING, **for_schedule)
    folder_errors: list[str] = []
    try:
        store = open_store(settings)
        budget = Budget.from_settings(settings)
        # nothing is waited for past the budget plus one read timeout, whatever the server does
        with imap.connect(settings, mailbox, deadline=budget.deadline + settings.read_timeout) as session:
            for folder in mailbox.folders:
                if heartbeat:
                    heartbeat()
                if budget.spent():
                    result.more_pending = True
                    break
                try:
                    folder_result = sync_folder(
                        session,
                        store,
                        settings,
                        mailbox,
                        folder,
                        budget,
                        on_batch=on_batch,
                        heartbeat=heartbeat,
                        on_work=lambda: health.open_run(run),
                    )
                except ProtocolError as exc:  # this folder only (e.g. it does not exist); the others still sync
                    folder_errors.append(f"folder {folder!r}: {exc}")
                    log.debug("mailbox %s: %s", mailbox.id, folder_errors[-1])  # in the outcome line too
                    continue
                finally:
                    result.folders_checked += 1
                result.new += folder_result.new
                result.skipped += folder_result.skipped
                result.more_pending = result.more_pending or folder_result.more_pending
    except DatabaseError as exc:
        health.finish_interrupted(run, exc)
        raise
    except MailqError as exc:
        if folder_errors and isinstance(exc, (ImapConnectionError, ImapTimeoutError)):
            exc = type(exc)(f"{exc} (also: {'; '.join(folder_errors)})", orig=exc.orig)
        result.outcome, retry_at = health.finish_error(
            run, exc, settings, new=result.new, skipped=result.skipped, folders_checked=result.folders_checked
        )
        result.retry_at = retry_at.replace(tzinfo=UTC).timestamp() if retry_at is not None else None
        result.error_class, result.error_text = health.error_class_of(exc), str(exc)
        result.duration_s = time.monotonic() - started
        log_outcome(result, mailbox.name, mailbox.state)
        return result
    except Exception as exc:  # a bug: record it, then let RQ keep the traceback
        try:
            health.finish_error(run, exc, settings, new=result.new, skipped=result.skipped, folders_checked=result.folders_checked)
        except MailqError:
            log.exception("mailbox %s: could not record the failed poll", mailbox.id)
        raise
    folder_error = "; ".join(folder_errors) if folder_errors else None
    result.outcome = health.finish_ok(
        run,
        new=result.new,
        skipped=result.skipped,
        folders_checked=result.folders_checked,
        partial=result.more_pending,
        folder_error=folder_error,
    )
    if folder_error:
        result.error_class, result.error_text = health.FOLDER_ERROR, folder_error
    result.duration_s = time.monotonic() - started
    log_outcome(result, mailbox.name, mailbox.state)
    return result


__all__ = ["PollResult", "poll_mailbox"]
