"""Bounded poll history: ``poll_run`` keeps ``MAILQ_POLL_HISTORY`` and at most N rows per mailbox.

One row per poll is 14.4 million rows a day at 10,000 mailboxes polled every
minute, so old rows are pruned, incrementally: every step deletes at most
``BATCH`` rows per statement, each in its own short transaction, and stops after
``STEP_SECONDS``. SQLite (one writer) and PostgreSQL (row locks) are never held
long, and workers writing their own poll runs interleave between batches. The
scheduler runs a step every ``STEP_EVERY`` seconds (six a minute: 3,000
mailboxes visited and up to 3 s of deleting, well above 10,000 rows a minute
of inflow), so the table converges even after a long outage.

Two bounds, whichever bites first:

* age: rows that started before now - ``poll_history`` go (the ``started_at``
  index finds them oldest first);
* count: each mailbox keeps its newest ``poll_history_per_mailbox`` rows. The
  mailboxes are visited in id order, one slice of 500 per step, so a tour of
  10,000 mailboxes takes 20 steps (under 4 minutes) and a mailbox polled every
  minute overshoots its bound by a few rows.

Mailbox health (state, last poll, last error) lives on the mailbox row and the
messages in their own table: pruning history never changes either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from .config import Settings
from .db import database, errors_as_mailq
from .models import Mailbox, PollRun, utcnow

BATCH = 500
"""Rows deleted per statement (and transaction): a few milliseconds of write lock."""
MAILBOX_SLICE = 500
"""Mailboxes whose count bound is checked per step."""
STEP_SECONDS = 0.5
"""A step stops starting batches after this long (the scheduler's pass must stay short)."""
STEP_EVERY = 10.0
"""Seconds between two steps in the scheduler."""


@dataclass
class PruneResult:
    by_age: int = 0
    by_count: int = 0
    cursor: int = 0  # the next mailbox id the count bound starts from (0: from the beginning)
    done: bool = True  # False when the time budget ran out with rows still to go


def _delete_ids(ids: list[int]) -> int:
    """Delete these rows, at most BATCH per statement, each statement its own short transaction."""
    deleted = 0
    for i in range(0, len(ids), BATCH):
        with database.atomic():
            deleted += PollRun.delete().where(PollRun.id.in_(ids[i : i + BATCH])).execute()
    return deleted


def prune_by_age(cutoff: datetime, deadline: float) -> tuple[int, bool]:
    """Delete rows started before ``cutoff``, oldest first, a batch at a time; (deleted, finished)."""
    deleted = 0
    while time.monotonic() < deadline:
        ids = [
            r[0] for r in PollRun.select(PollRun.id).where(PollRun.started_at < cutoff).order_by(PollRun.started_at).limit(BATCH).tuples()
        ]
        deleted += _delete_ids(ids)
        if len(ids) < BATCH:
            return deleted, True
    return deleted, False


def _excess_ids(mailbox_id: int, keep: int, limit: int) -> list[int]:
    """Ids of the mailbox's rows older than its newest ``keep`` (at most ``limit``).

    The cut is found by an index seek (``mailbox, started_at``) that reads
    ``keep + 1`` entries, so a mailbox already within its bound costs one short read.
    """
    newest_first = PollRun.select(PollRun.started_at, PollRun.id).where(PollRun.mailbox == mailbox_id)
    cut = newest_first.order_by(PollRun.started_at.desc(), PollRun.id.desc()).offset(keep).limit(1).tuples().first()
    if cut is None:
        return []
    started, row_id = cut
    older = (PollRun.started_at < started) | ((PollRun.started_at == started) & (PollRun.id <= row_id))
    return [r[0] for r in PollRun.select(PollRun.id).where((PollRun.mailbox == mailbox_id) & older).limit(limit).tuples()]


def _over(mailbox_ids: list[int], keep: int) -> list[int]:
    """Which of these mailboxes hold more than ``keep`` rows: one grouped scan of the index, not a query each."""
    if not mailbox_ids:
        return []
    query = (
        PollRun.select(PollRun.mailbox)
        .where(PollRun.mailbox.between(mailbox_ids[0], mailbox_ids[-1]))
        .group_by(PollRun.mailbox)
        .having(pw.fn.COUNT(PollRun.id) > keep)
        .order_by(PollRun.mailbox)
    )
    return [r[0] for r in query.tuples()]


def prune_by_count(keep: int, cursor: int, deadline: float, slice_size: int = MAILBOX_SLICE) -> tuple[int, int, bool]:
    """Trim one slice of mailboxes (ids from ``cursor`` on) to their newest ``keep`` rows.

    Returns (deleted, next cursor, whether the tour of all mailboxes is complete).
    One slice per step keeps the scheduler's cost flat (~0.2 ms per mailbox visited)
    however many mailboxes there are; a mailbox gains a tour's worth of rows at most.
    """
    deleted = 0
    ids = [r[0] for r in Mailbox.select(Mailbox.id).where(Mailbox.id >= cursor).order_by(Mailbox.id).limit(slice_size).tuples()]
    doomed: list[int] = []  # gathered across mailboxes, deleted BATCH at a time
    for mailbox_id in _over(ids, keep):
        while True:
            if time.monotonic() >= deadline:
                return deleted + _delete_ids(doomed), mailbox_id, False  # resume at this mailbox next step
            excess = _excess_ids(mailbox_id, keep, BATCH)
            doomed += excess
            if len(doomed) >= BATCH:  # a full batch: always flushed before this mailbox is read again
                deleted += _delete_ids(doomed)
                doomed = []
            if len(excess) < BATCH:
                break
    deleted += _delete_ids(doomed)
    if len(ids) < slice_size:
        return deleted, 0, True
    return deleted, ids[-1] + 1, False


def prune(settings: Settings, cursor: int = 0, *, budget_s: float = STEP_SECONDS, now: datetime | None = None) -> PruneResult:
    """One incremental step of both bounds; pass the returned ``cursor`` to the next step."""
    deadline = time.monotonic() + budget_s
    result = PruneResult(cursor=cursor)
    with errors_as_mailq():
        if settings.poll_history > 0:
            cutoff = (now or utcnow()) - timedelta(seconds=settings.poll_history)
            result.by_age, result.done = prune_by_age(cutoff, deadline)
        if settings.poll_history_per_mailbox > 0:
            result.by_count, result.cursor, finished = prune_by_count(settings.poll_history_per_mailbox, cursor, deadline)
            result.done = result.done and finished
    return result


def summary(settings: Settings, since: datetime) -> dict:
    """What ``mailq status`` shows of the history: outcomes since ``since``, the oldest row, the bounds."""
    with errors_as_mailq():
        outcomes = dict(
            PollRun.select(PollRun.outcome, pw.fn.COUNT(PollRun.id)).where(PollRun.started_at >= since).group_by(PollRun.outcome).tuples()
        )
        oldest = PollRun.select(pw.fn.MIN(PollRun.started_at)).scalar()
    return {
        "since": since.isoformat() + "Z",
        "outcomes": outcomes,
        "oldest_at": (oldest if isinstance(oldest, datetime) else _parse(oldest)).isoformat() + "Z" if oldest else None,
        "keep_s": settings.poll_history,
        "keep_per_mailbox": settings.poll_history_per_mailbox,
    }


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(str(value))


__all__ = ["PruneResult", "prune", "prune_by_age", "prune_by_count", "summary"]
