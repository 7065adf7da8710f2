"""Recurring polls in rq-scheduler, reconciled with the database (the source of truth).

Each enabled mailbox has exactly one rq-scheduler entry, id ``mbx-<mailbox id>``:
a member of rq-scheduler's ZSET (score = next run, epoch seconds) plus its job
hash, which is only a *template* (function, mailbox id, queue, interval).
``mailq scheduler`` never pushes the template itself: it claims the mailbox and
enqueues a fresh ``poll-<id>-<token>`` job (see ``claims.submit_poll``). So the
template never runs, never gets a result TTL, and rq-scheduler's "hash expired,
cancel the schedule" trap (a result_ttl below the interval) cannot fire.

Reconcile adds missing entries (a never-polled mailbox at once, others jittered
across the interval, never before a backoff ends), removes stale ones (mailbox deleted, paused or in
auth_error) and rewrites changed ones (interval or priority) keeping their
next run. It is idempotent and cheap: one ZRANGE, pipelined HGETALLs, one query.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq.job import Job
from rq_scheduler import Scheduler

from . import claims, keys
from .config import Settings
from .db import errors_as_mailq
from .keys import SCHEDULED, mailbox_of_entry
from .models import Mailbox
from .poll import PollResult
from .queues import EMAIL, connect, errors_as_queue, poll_queue_name
from .states import Outcome

_CHUNK = 500


@dataclass
class Entry:
    """A recurring poll as stored in Redis."""

    mailbox_id: int
    next_run: float  # epoch seconds
    interval: int | None  # None when the template hash is gone
    queue: str | None


@dataclass
class Plan:
    missing: list[int]
    stale: list[int]
    changed: list[int]
    unchanged: int


def _scheduler(conn: redis.Redis) -> Scheduler:
    return Scheduler(queue_name=EMAIL, connection=conn, interval=1)


def entries(conn: redis.Redis, start: int = 0, end: int = -1) -> list[Entry]:
    """Recurring polls ordered by next run, ``start..end`` inclusive (ZRANGE ranks)."""
    members = conn.zrange(SCHEDULED, start, end, withscores=True)
    found = [(mailbox_of_entry(m.decode()), score) for m, score in members]
    found = [(mid, score) for mid, score in found if mid is not None]
    result: list[Entry] = []
    for i in range(0, len(found), _CHUNK):
        chunk = found[i : i + _CHUNK]
        jobs = Job.fetch_many([keys.schedule_entry(mid) for mid, _ in chunk], connection=conn)
        for (mid, score), job in zip(chunk, jobs):
            interval = job.meta.get("interval") if job is not None else None
            result.append(Entry(mid, score, interval, job.origin if job is not None else None))
    return result


def count(conn: redis.Redis) -> int:
    return conn.zcard(SCHEDULED)


def next_runs(conn: redis.Redis, mailbox_ids: list[int]) -> dict[int, datetime]:
    """Next scheduled run per mailbox (absent when not scheduled), one round trip."""
    if not mailbox_ids:
        return {}
    pipe = conn.pipeline(transaction=False)
    for mid in mailbox_ids:
        pipe.zscore(SCHEDULED, keys.schedule_entry(mid))
    scores = pipe.execute()
    return {mid: datetime.fromtimestamp(s, UTC).replace(tzinfo=None) for mid, s in zip(mailbox_ids, scores) if s is not None}


def _desired() -> dict[int, tuple[int, str, datetime | None, bool]]:
    """mailbox id -> (interval, queue, next attempt, never polled) of every enabled mailbox."""
    with errors_as_mailq():
        rows = Mailbox.select(Mailbox.id, Mailbox.interval, Mailbox.priority, Mailbox.next_attempt_at, Mailbox.last_poll_at).where(
            Mailbox.enabled_clause()
        )
        return {m.id: (m.interval, poll_queue_name(m.priority), m.next_attempt_at, m.last_poll_at is None) for m in rows}


def plan(settings: Settings) -> tuple[Plan, dict, dict]:
    """What reconcile would change, without changing it."""
    conn = connect(settings)
    desired = _desired()
    with errors_as_queue(settings):
        current = {e.mailbox_id: e for e in entries(conn)}
        # A template hash left without its ZSET member (e.g. a bare cancel) is not a schedule.
    missing = sorted(mid for mid in desired if mid not in current or current[mid].interval is None)
    stale = sorted(mid for mid in current if mid not in desired)
    changed = sorted(
        mid for mid, e in current.items() if mid in desired and e.interval is not None and (e.interval, e.queue) != desired[mid][:2]
    )
    unchanged = len(desired) - len(missing) - len(changed)
    return Plan(missing, stale, changed, unchanged), desired, current


def add(conn: redis.Redis, mailbox_id: int, interval: int, queue_name: str, *, first_run: float, job_timeout: int) -> None:
    """Create or replace the entry (same id replaces in place: never a duplicate)."""
    _scheduler(conn).schedule(
        scheduled_time=datetime.fromtimestamp(first_run, UTC).replace(tzinfo=None),
        func=keys.POLL_JOB,
        args=[mailbox_id],
        interval=interval,
        id=keys.schedule_entry(mailbox_id),
        queue_name=queue_name,
        result_ttl=-1,
        timeout=job_timeout,
        description=f"poll mailbox {mailbox_id} every {interval}s",
    )


def first_run(interval: int, next_attempt_at: datetime | None, now: float | None = None, never_polled: bool = False) -> float:
    """When a new entry first fires: never inside a backoff.

    A mailbox never polled starts now: its owner is waiting for its mail, and the
    worker pool, not the clock, bounds how many log in at once. Entries of mailboxes
    polled before (Redis flushed, resumed) are jittered across the interval, so a
    thousand of them don't fire in the same second.
    """
    now = time.time() if now is None else now
    when = now if never_polled else now + random.uniform(0, interval)
    if next_attempt_at is not None:
        when = max(when, next_attempt_at.replace(tzinfo=UTC).timestamp())
    return when


def remove(conn: redis.Redis, mailbox_id: int) -> None:
    """Cancel the entry and delete its template hash (``cancel`` alone leaves the hash behind)."""
    with keys.batch(conn) as pipe:
        pipe.zrem(SCHEDULED, keys.schedule_entry(mailbox_id))
        pipe.delete(Job.key_for(keys.schedule_entry(mailbox_id)))


def defer(conn: redis.Redis, mailbox_id: int, until: float) -> None:
    """Move the next run to ``until`` unless it is already later; never re-creates a removed entry.

    XX: never resurrect an entry removed meanwhile; GT: keep a later run set by a backoff.
    """
    conn.zadd(SCHEDULED, {keys.schedule_entry(mailbox_id): int(until + 0.999)}, xx=True, gt=True)


def after_poll(conn: redis.Redis, result: PollResult, started: float) -> None:
    """Move a mailbox's schedule after its poll: no earlier than one interval after the poll
    started, not before a backoff ends, and gone after an authentication failure (no logins
    until credentials change or an operator resumes). Sent before the poll releases its
    claim (``conn`` may be the pipeline that releases it), so no scheduler push slips in between."""
    if result.interval is None:
        return  # the mailbox is gone
    if result.outcome == Outcome.AUTH_ERROR:
        remove(conn, result.mailbox_id)
        return
    defer(conn, result.mailbox_id, started + result.interval)
    if result.outcome == Outcome.ERROR and result.retry_at is not None:
        defer(conn, result.mailbox_id, result.retry_at)


def reconcile(settings: Settings) -> ReconcileResult:
    """Make Redis match the database; returns what changed."""
    p, desired, current = plan(settings)
    conn = connect(settings)
    now = time.time()
    with errors_as_queue(settings):
        for mid in p.missing:
            interval, queue_name, next_attempt, never_polled = desired[mid]
            add(
                conn,
                mid,
                interval,
                queue_name,
                first_run=first_run(interval, next_attempt, now, never_polled),
                job_timeout=settings.job_timeout,
            )
        for mid in p.changed:
            interval, queue_name = desired[mid][:2]
            keep = min(current[mid].next_run, now + interval)
            add(conn, mid, interval, queue_name, first_run=keep, job_timeout=settings.job_timeout)
        for mid in p.stale:
            remove(conn, mid)
    return ReconcileResult(p.missing, [keys.schedule_entry(m) for m in p.stale], p.changed, p.unchanged)


@dataclass
class ReconcileResult:
    added: list[int]
    removed: list[str]
    updated: list[int]
    unchanged: int


def ensure(settings: Settings, mailbox: Mailbox) -> str:
    """Bring one mailbox's entry in line with its row; returns added|updated|removed|unchanged|absent."""
    conn = connect(settings)
    with errors_as_queue(settings):
        score = conn.zscore(SCHEDULED, keys.schedule_entry(mailbox.id))
        if not mailbox.enabled:
            if score is None:
                return "absent"
            remove(conn, mailbox.id)
            return "removed"
        template = Job.fetch_many([keys.schedule_entry(mailbox.id)], connection=conn)[0]
        queue_name = poll_queue_name(mailbox.priority)
        if score is not None and template is not None:
            if (template.meta.get("interval"), template.origin) == (mailbox.interval, queue_name):
                return "unchanged"
            add(
                conn,
                mailbox.id,
                mailbox.interval,
                queue_name,
                first_run=min(score, time.time() + mailbox.interval),
                job_timeout=settings.job_timeout,
            )
            return "updated"
        add(
            conn,
            mailbox.id,
            mailbox.interval,
            queue_name,
            first_run=first_run(mailbox.interval, mailbox.next_attempt_at, never_polled=mailbox.last_poll_at is None),
            job_timeout=settings.job_timeout,
        )
        return "added"


def forget(settings: Settings, mailbox_id: int) -> None:
    """Stop every future poll of a mailbox: its schedule, its template and a queued poll.

    A poll already running is left to finish (the mailbox is parked or gone by
    then, and the poll stops at its next check); its claim expires with it.
    """
    conn = connect(settings)
    with errors_as_queue(settings):
        remove(conn, mailbox_id)
        claims.cancel_queued_poll(conn, mailbox_id)


def liveness(conn: redis.Redis) -> tuple[dict | None, datetime | None]:
    """(the live scheduler's record or None, last reconcile time) for ops and the console."""
    alive, reconciled = conn.mget(keys.SCHEDULER_ALIVE, keys.SCHEDULER_RECONCILED)
    record = json.loads(alive) if alive else None
    when = datetime.fromisoformat(reconciled.decode().rstrip("Z")) if reconciled else None
    return record, when
