"""Mailbox rows and detail for the console, and the operator's actions on mailboxes."""

from __future__ import annotations

import time
from datetime import datetime

import peewee as pw
import redis
from rq.job import Job

from .. import claims, imap, mailboxes, schedule
from ..config import Settings
from ..db import errors_as_mailq
from ..errors import MailqError, QueueError
from ..models import Mailbox, Message, PollRun, utcnow
from ..push import status
from ..queues import connect, errors_as_queue, poll_queue_name
from ..states import PAUSED
from .common import _DONE
from .types import MailboxRow, PollRunRow


def _new_since(mailbox_ids: list[int], since: datetime) -> dict[int, int]:
    if not mailbox_ids:
        return {}
    rows = (
        Message.select(Message.mailbox, pw.fn.COUNT(Message.id).alias("n"))
        .where(Message.mailbox.in_(mailbox_ids) & (Message.created_at >= since))
        .group_by(Message.mailbox)
        .tuples()
    )
    return {mid: n for mid, n in rows}


def _safe_next_runs(settings: Settings, ids: list[int]) -> dict[int, datetime]:
    try:
        return schedule.next_runs(connect(settings), ids)
    except (redis.exceptions.RedisError, MailqError):
        return {}  # Redis down: the rows still draw, without next runs


def push_states(settings: Settings, rows: list[Mailbox]) -> dict[int, tuple[str, str]]:
    """(pushed | reconnecting | polled, sentence) per mailbox; empty when Redis is unreachable."""

    try:
        return status.of_mailboxes(connect(settings), rows)
    except (redis.exceptions.RedisError, MailqError):
        return {}  # Redis down: the rows still draw, without push states


def mailbox_rows(
    settings: Settings, offset: int = 0, limit: int = 200, text: str | None = None, state: str | None = None
) -> tuple[list[MailboxRow], int]:
    """A page of mailboxes (by id) with health and next run, and the total matching."""
    with errors_as_mailq():
        query = Mailbox.select()
        if text:
            pattern = f"%{text}%"
            query = query.where((Mailbox.name**pattern) | (Mailbox.host**pattern) | (Mailbox.username**pattern))
        if state == PAUSED:
            query = query.where(Mailbox.paused == True)  # noqa: E712
        elif state:
            query = query.where((Mailbox.state == state) & (Mailbox.paused == False))  # noqa: E712
        total = query.count()
        page = list(query.order_by(Mailbox.id).offset(offset).limit(limit))
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        new_today = _new_since([m.id for m in page], today)
    runs = _safe_next_runs(settings, [m.id for m in page])
    push = push_states(settings, page)
    rows = [
        MailboxRow(
            m.id,
            m.name,
            m.host,
            m.display_state,
            m.last_poll_at,
            m.last_success_at,
            runs.get(m.id),
            new_today.get(m.id, 0),
            m.consecutive_failures,
            m.last_error,
            push.get(m.id, (None,))[0],
        )
        for m in page
    ]
    return rows, total


def mailbox_detail(settings: Settings, mailbox_id: int) -> tuple[dict, list[PollRunRow]]:
    """The mailbox's fields (no secret), its next run and claim, and its last 50 poll runs."""
    mailbox = mailboxes.get(mailbox_id)
    info = mailboxes.to_dict(mailbox, detail=True)
    runs = _safe_next_runs(settings, [mailbox.id])
    info["next_run_at"] = runs[mailbox.id].isoformat() + "Z" if mailbox.id in runs else None
    info["push"] = push_states(settings, [mailbox]).get(mailbox.id, (None, "unknown (Redis is unreachable)"))[1]
    try:
        info["poll_job"] = claims.holder(connect(settings), mailbox.id)
    except redis.exceptions.RedisError:
        info["poll_job"] = None
    with errors_as_mailq():
        rows = list(PollRun.select().where(PollRun.mailbox == mailbox.id).order_by(PollRun.started_at.desc(), PollRun.id.desc()).limit(50))
    return info, [
        PollRunRow(r.id, r.started_at, r.finished_at, r.outcome, r.new_count, r.skipped_count, r.error_class, r.error_text) for r in rows
    ]


def poll_now(settings: Settings, mailbox_ids: list[int], wait: bool = False, timeout: float = 300) -> list[str]:
    """Enqueue a poll of each mailbox now (reusing one already queued or running); job ids in order.

    An operator's poll ignores a backoff. With ``wait`` it blocks until every
    poll has ended; ``QueueError`` after ``timeout`` seconds.
    """
    targets = [mailboxes.get(m) for m in mailbox_ids]
    conn = connect(settings)
    with errors_as_queue(settings):
        ids = [claims.submit_poll(settings, m.id, poll_queue_name(m.priority), manual=True, conn=conn)[0] for m in targets]
        if wait:
            wait_for_jobs(settings, ids, timeout)
    return ids


def wait_for_jobs(settings: Settings, job_ids: list[str], timeout: float) -> None:
    """Block until each job finished, failed, stopped or vanished (a finished scheduled poll keeps no hash)."""
    conn = connect(settings)
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(job_ids))
    delay = 0.05
    while pending:
        pipe = conn.pipeline(transaction=False)
        for job_id in pending:
            pipe.hget(Job.key_for(job_id), "status")
        statuses = pipe.execute()
        pending = [j for j, s in zip(pending, statuses) if s is not None and s.decode() not in _DONE]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise QueueError(f"timed out after {timeout:g}s waiting for {len(pending)} poll(s): are workers running? (`mailq status`)")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def poll_outcomes(settings: Settings, mailbox_ids: list[int], job_ids: list[str]) -> list[dict]:
    """What each finished poll did, in the ``PollResult.as_dict`` shape, for ``mailq poll --wait``.

    The job's own result when Redis kept it (an operator's poll keeps it an hour);
    otherwise (the poll joined a recurring one, which keeps none) the mailbox's
    latest poll run from the database; a job that crashed reports its last error line.
    """
    with errors_as_queue(settings):
        jobs = Job.fetch_many(list(job_ids), connection=connect(settings))
    found = []
    for mailbox_id, job in zip(mailbox_ids, jobs):
        result = None
        if job is not None and job.get_status(refresh=False) == "finished":
            result = job.return_value()
        elif job is not None and job.get_status(refresh=False) == "failed":
            lines = (job.exc_info or "").strip().splitlines()
            result = {"mailbox_id": mailbox_id, "outcome": "error", "error_text": lines[-1] if lines else "the job failed"}
        if not isinstance(result, dict):
            with errors_as_mailq():
                run = PollRun.select().where(PollRun.mailbox == mailbox_id).order_by(PollRun.id.desc()).first()
            result = {"mailbox_id": mailbox_id, "outcome": "unknown"}
            if run is not None:
                duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
                result.update(
                    outcome=run.outcome,
                    new=run.new_count,
                    skipped=run.skipped_count,
                    folders_checked=run.folders_checked,
                    duration_s=duration,
                    error_class=run.error_class,
                    error_text=run.error_text,
                )
        found.append(result)
    return found


def pause(settings: Settings, mailbox_id: int) -> None:
    """Park the mailbox in the database, then drop its schedule and any queued poll.

    The database change stands even if Redis is down (``QueueError`` is raised
    after it); the scheduler's next reconcile then drops the schedule.
    """
    mailbox = mailboxes.set_paused(mailboxes.get(mailbox_id), True)
    schedule.forget(settings, mailbox.id)


def resume(settings: Settings, mailbox_id: int) -> None:
    """Unpark (also clears auth_error and backoff) and schedule it again; ``QueueError`` as for ``pause``."""
    mailbox = mailboxes.set_paused(mailboxes.get(mailbox_id), False)
    schedule.ensure(settings, mailbox)


def sync_mailbox(settings: Settings, mailbox_id: int) -> str:
    """Bring one mailbox's schedule in line with its row (after add/update); see ``schedule.ensure``."""
    return schedule.ensure(settings, mailboxes.get(mailbox_id))


def test_login(settings: Settings, mailbox_id: int):
    """Connect and log in once; returns ``imap.Probe`` (raises the ImapError subclass that explains a failure)."""
    return imap.probe(settings, mailboxes.get(mailbox_id))
