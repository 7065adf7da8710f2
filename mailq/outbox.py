"""The dispatch outbox: every committed message reaches its ``dispatch`` job exactly once.

A batch is claimed in Redis (``keys.DISPATCH_CLAIMS``: message id -> job id)
in the same MULTI that enqueues its job. The claims live in Redis beside the
jobs on purpose: a flushed Redis loses both, and the sweep (run by ``mailq
scheduler``) then finds rows committed but not dispatched whose claim is
missing or whose job vanished (a crash between commit and enqueue, a flushed
Redis) and dispatches them; rows whose job still exists (queued, waiting for a
retry, failed) are left to it. Delivery itself is in delivery.py.

One ``dispatch`` job per committed batch on the ``workflow`` queue (never one
job per message), and none at all unless ``MAILQ_HOOK`` or
``MAILQ_WEBHOOK_URL`` is set.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

import redis
from rq import Retry
from rq.job import Job

from . import keys
from .config import Settings
from .db import errors_as_mailq
from .models import Message, utcnow
from .queues import WORKFLOW, queue

log = logging.getLogger("mailq.dispatch")

SWEEP_GRACE = timedelta(seconds=60)
"""Rows younger than this are still being enqueued by their poll; the sweep leaves them."""
SWEEP_WINDOW = timedelta(days=1)
"""The sweep looks back this far; older undispatched rows (e.g. from before a hook was configured) are left alone."""
DROPPED = "dropped"
"""Claim value for messages whose failed dispatch an operator deleted: the sweep leaves them alone."""


def configured(settings: Settings) -> bool:
    """Whether there is anything downstream to dispatch to."""
    return bool(settings.hook or settings.webhook_url)


def claim_messages(pipe, message_ids: list[int], job_id: str) -> None:
    """Record (on a pipeline, with the enqueue) that ``job_id`` dispatches these messages."""
    if message_ids:
        pipe.hset(keys.DISPATCH_CLAIMS, mapping={str(m): job_id for m in message_ids})


def message_claims(conn: redis.Redis, message_ids: list[int]) -> dict[int, str]:
    if not message_ids:
        return {}
    values = conn.hmget(keys.DISPATCH_CLAIMS, [str(m) for m in message_ids])
    return {m: v.decode() for m, v in zip(message_ids, values) if v is not None}


def drop_message_claims(conn: redis.Redis, message_ids: list[int]) -> None:
    if message_ids:
        conn.hdel(keys.DISPATCH_CLAIMS, *[str(m) for m in message_ids])


def abandon_message_claims(conn: redis.Redis, message_ids: list[int]) -> None:
    """Mark messages as given up (their failed dispatch job was deleted)."""
    if message_ids:
        conn.hset(keys.DISPATCH_CLAIMS, mapping={str(m): DROPPED for m in message_ids})


def scan_message_claims(conn: redis.Redis, cursor: int, count: int = 1000) -> tuple[int, dict[int, str]]:
    cursor, page = conn.hscan(keys.DISPATCH_CLAIMS, cursor, count=count)
    return cursor, {int(k): v.decode() for k, v in page.items()}


def jobs_alive(conn: redis.Redis, job_ids: set[str]) -> set[str]:
    """Which of these rq jobs still exist (queued, scheduled for a retry, running or failed)."""
    ids = sorted(job_ids)
    if not ids:
        return set()
    pipe = conn.pipeline(transaction=False)
    for j in ids:
        pipe.exists(Job.key_for(j))
    return {j for j, found in zip(ids, pipe.execute()) if found}


def enqueue_batch(settings: Settings, conn: redis.Redis, message_ids: list[int]) -> str:
    """Claim the messages and enqueue their dispatch job, atomically (one MULTI)."""
    job_id = keys.dispatch_job_id(min(message_ids), uuid.uuid4().hex[:8])
    delays = settings.retry_delays
    pipe = conn.pipeline()
    queue(settings, WORKFLOW, conn).enqueue_call(
        keys.DISPATCH_JOB,
        args=(sorted(message_ids),),
        job_id=job_id,
        timeout=settings.job_timeout,
        retry=Retry(max=len(delays), interval=delays),
        result_ttl=600,
        description=f"dispatch {len(message_ids)} message(s)",
        pipeline=pipe,
    )
    claim_messages(pipe, message_ids, job_id)  # after: rq opens the MULTI itself
    pipe.execute()
    return job_id


def batch_enqueuer(settings: Settings, conn: redis.Redis) -> Callable[[list[int]], None] | None:
    """The poll's ``on_batch`` (None when nothing is configured downstream).

    It never fails the poll: the sweep covers a batch Redis refused.
    """
    if not configured(settings):
        return None

    def on_batch(message_ids: list[int]) -> None:
        if not message_ids:
            return
        try:
            enqueue_batch(settings, conn, list(message_ids))
        except redis.exceptions.RedisError as exc:
            log.warning("could not enqueue dispatch of %d message(s), the sweep will: %s", len(message_ids), exc)

    return on_batch


def sweep(settings: Settings, conn: redis.Redis, *, limit: int = 5000) -> int:
    """Enqueue dispatch for committed rows that no live job covers; returns how many rows."""
    if not configured(settings):
        return 0
    now = utcnow()
    with errors_as_mailq():
        ids = [
            r.id
            for r in Message.select(Message.id)
            .where(Message.dispatched_at.is_null() & (Message.created_at >= now - SWEEP_WINDOW) & (Message.created_at <= now - SWEEP_GRACE))
            .order_by(Message.id)
            .limit(limit)
        ]
    if not ids:
        return 0
    claims = message_claims(conn, ids)
    alive = jobs_alive(conn, {c for c in claims.values() if c != DROPPED})
    orphans = [m for m in ids if claims.get(m) != DROPPED and claims.get(m) not in alive]
    for i in range(0, len(orphans), settings.fetch_batch):
        enqueue_batch(settings, conn, orphans[i : i + settings.fetch_batch])
    if orphans:
        log.info("outbox sweep: dispatching %d message(s) that no job covered", len(orphans))
    return len(orphans)


def clean_claims(settings: Settings, conn: redis.Redis, cursor: int = 0) -> int:
    """Drop one page of claims that can no longer matter (row dispatched, gone, or out of the window
    with no live job); returns the next cursor (0 when a full pass is done)."""
    cursor, page = scan_message_claims(conn, cursor)
    if not page:
        return cursor
    alive = jobs_alive(conn, {c for c in page.values() if c != DROPPED})
    with errors_as_mailq():
        rows = {r.id: r for r in Message.select(Message.id, Message.dispatched_at, Message.created_at).where(Message.id.in_(list(page)))}
    oldest = utcnow() - SWEEP_WINDOW
    dead = [
        m
        for m, owner in page.items()
        if m not in rows or rows[m].dispatched_at is not None or (owner not in alive and rows[m].created_at < oldest)
    ]
    drop_message_claims(conn, dead)
    return cursor
