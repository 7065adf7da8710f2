"""Bounded poll history: ``poll_run`` keeps ``MAILQ_POLL_HISTORY`` and at most N rows per mailbox.

One row per poll is 14.4 million rows a day at 10,000 mailboxes polled every
minute, so old rows are pruned, incrementally: every step deletes at most
``BATCH`` rows per statement, each in its own short transaction, and stops after
a time budget. SQLite (one writer) and PostgreSQL (row locks) are never held
long, and workers writing their own poll runs interleave between batches. The
scheduler runs one step per reconcile (under the reconcile lock, so only one
scheduler prunes); a step removes more than a minute of inflow, so the table
converges even after a long outage.

Two bounds, whichever bites first:

* age: rows that started before now - ``poll_history`` go (the ``started_at``
  index finds them oldest first);
* count: each mailbox keeps its newest ``poll_history_per_mailbox`` rows. The
  mailboxes are visited in id order, a slice per step, so a full tour of 10,000
  mailboxes takes a few minutes and a mailbox overshoots by a few rows at most.

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
STEP_SECONDS = 2.0
"""A step stops starting batches after this long (the scheduler's pass must stay short)."""


@dataclass
class PruneResult:
    by_age: int = 0
    by_count: int = 0
    cursor: int = 0  # the next mailbox id the count bound starts from (0: from the beginning)
    done: bool = True  # False when the time budget ran out with rows still to go


def _delete_ids(ids: list[int]) -> int:
    if not ids:
        return 0
    with database.atomic():
        return PollRun.delete().where(PollRun.id.in_(ids)).execute()


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


def _excess_ids(first_id: int, last_id: int, keep: int) -> list[int]:
    """Ids of rows beyond the newest ``keep`` of each mailbox in ``first_id..last_id`` (at most BATCH)."""
    rank = pw.fn.ROW_NUMBER().over(partition_by=[PollRun.mailbox], order_by=[PollRun.started_at.desc(), PollRun.id.desc()])
    ranked = PollRun.select(PollRun.id.alias("rid"), rank.alias("rn")).where(PollRun.mailbox.between(first_id, last_id)).alias("ranked")
    query = pw.Select([ranked], [ranked.c.rid]).where(ranked.c.rn > keep).limit(BATCH)
    return [r[0] for r in query.bind(database).tuples()]


def prune_by_count(keep: int, cursor: int, deadline: float, slice_size: int = MAILBOX_SLICE) -> tuple[int, int, bool]:
    """Trim mailboxes from id ``cursor`` on to their newest ``keep`` rows; (deleted, next cursor, tour finished)."""
    deleted = 0
    while time.monotonic() < deadline:
        ids = [r[0] for r in Mailbox.select(Mailbox.id).where(Mailbox.id >= cursor).order_by(Mailbox.id).limit(slice_size).tuples()]
        if not ids:
            return deleted, 0, True
        while time.monotonic() < deadline:
            excess = _excess_ids(ids[0], ids[-1], keep)
            deleted += _delete_ids(excess)
            if len(excess) < BATCH:
                break
        else:
            return deleted, ids[0], False  # out of time inside this slice: resume it next step
        cursor = ids[-1] + 1
        if len(ids) < slice_size:
            return deleted, 0, True
    return deleted, cursor, False


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
