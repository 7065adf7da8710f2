"""The per-mailbox poll claim, and the one way polls get enqueued (``submit_poll``).

One Redis key per mailbox (``keys.poll_claim``) says "a poll of mailbox N is
queued or running". It holds the token (the poll job's id) of its owner and
always has a TTL, so nothing blocks a mailbox forever:

* ``submit_poll`` (the scheduler, an operator's "poll now", a poll with more
  mail waiting) claims it with the new job's id and a long TTL covering the
  wait in the queue (the job gets the same RQ ``ttl``, so a claim and its job
  expire together), and enqueues the job only if the claim was taken;
* the job, once running, ``adopt``\\ s it (same token) with the short ``lock_ttl``
  and ``renewal.Renewer`` keeps it alive while it polls; a killed worker stops
  renewing, and the mailbox is free again within ``lock_ttl``;
* a claim whose job is gone is ``steal``\\ -ed by the next submitter, atomically;
* every exit path releases it by compare-and-delete, so a late release never
  frees someone else's claim.

One key for marker and lock means a tick can never enqueue a second poll
while one waits or runs, and two polls of one mailbox never overlap.
"""

from __future__ import annotations

import uuid

import redis
from rq.job import Job, JobStatus

from . import keys
from .config import Settings
from .queues import connect, queue

POLL_FAILURE_TTL = 7 * 24 * 3600
"""A crashed poll stays in the failed registry a week: a bug hitting every mailbox every minute must not fill Redis."""
MANUAL_RESULT_TTL = 3600
"""Results of polls an operator asked for are kept an hour, so ``poll --wait`` (and the console) can read them."""
CLAIM_GRACE_S = 10
"""A claim no running poll has adopted yet is trusted this long before its job is looked for in its queue.
Wrongly judging it dead costs one redundant job, never an overlap: the poll that fails to adopt its claim skips."""
_DEAD = {JobStatus.FAILED, JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.CANCELED}


def claim(conn: redis.Redis, mailbox_id: int, token: str, ttl: float) -> bool:
    """Take the mailbox's claim if nobody holds it."""
    return bool(conn.set(keys.poll_claim(mailbox_id), token, px=int(ttl * 1000), nx=True))


def holder(conn: redis.Redis, mailbox_id: int) -> str | None:
    value = conn.get(keys.poll_claim(mailbox_id))
    return value.decode() if value is not None else None


def holders(conn: redis.Redis, mailbox_ids: list[int]) -> dict[int, str]:
    """Claims of many mailboxes in one round trip (mailbox id -> token)."""
    if not mailbox_ids:
        return {}
    values = conn.mget([keys.poll_claim(m) for m in mailbox_ids])
    return {m: v.decode() for m, v in zip(mailbox_ids, values) if v is not None}


def adopt(conn: redis.Redis, mailbox_id: int, token: str, ttl: float) -> bool:
    """Extend our claim to ``ttl`` (or re-take a vanished one); False when another owner holds it.

    A running poll adopts its claim with this (same token, the short ``lock_ttl``),
    and ``renewal.Renewer`` calls it again as the TTL runs down.
    """
    return bool(keys.scripts(conn).renew(keys=[keys.poll_claim(mailbox_id)], args=[token, int(ttl * 1000)]))


def release(conn: redis.Redis, mailbox_id: int, token: str) -> bool:
    """Drop the claim only if it is still ours."""
    return release_key(conn, keys.poll_claim(mailbox_id), token)


def release_key(conn: redis.Redis, key: str, token: str) -> bool:
    """Compare-and-delete any token-holding key (the poll claims, the scheduler's lock)."""
    return bool(keys.scripts(conn).release(keys=[key], args=[token]))


def steal(conn: redis.Redis, mailbox_id: int, old: str, new: str, ttl: float) -> bool:
    """Replace a claim known to be dead (its job failed or vanished) with ours, atomically."""
    return bool(keys.scripts(conn).steal(keys=[keys.poll_claim(mailbox_id)], args=[old, new, int(ttl * 1000)]))


def forget(conn: redis.Redis, mailbox_id: int) -> None:
    """Drop the claim whoever holds it (mailbox removal)."""
    conn.delete(keys.poll_claim(mailbox_id))


def queued_ttl(settings: Settings) -> int:
    """How long a poll may wait in the queue (its claim lives as long): past that a fresh one replaces it."""
    return max(settings.job_timeout, 60)


def claim_is_dead(settings: Settings, conn: redis.Redis, mailbox_id: int, token: str) -> bool:
    """A claim whose job crashed, finished without releasing, vanished (flushed, expired), or was lost
    in transit: taken off its queue by a worker that died before the poll adopted the claim.

    A running poll adopts the claim with the short ``lock_ttl`` and renews it, so
    a claim with a longer TTL belongs to a job that should be waiting in its queue;
    if it is not there after a grace period, nobody will ever run it.
    """
    status, origin = conn.hmget(Job.key_for(token), "status", "origin")
    if status is None or status.decode() in _DEAD:
        return True
    remaining_ms = conn.pttl(keys.poll_claim(mailbox_id))
    if remaining_ms <= settings.lock_ttl * 1000:
        return False  # adopted by a running poll (or about to expire by itself)
    age_s = queued_ttl(settings) - remaining_ms / 1000
    if age_s < CLAIM_GRACE_S or origin is None:
        return False
    return conn.lpos(queue(settings, origin.decode(), conn).key, token) is None


def submit_poll(
    settings: Settings, mailbox_id: int, queue_name: str, *, manual: bool = False, conn: redis.Redis | None = None
) -> tuple[str, bool]:
    """Enqueue a poll unless one is already queued or running; returns (job id, whether it is new).

    The claim is taken before the push, so two schedulers (or a scheduler and
    an operator) can never put two polls of one mailbox on the queue.
    """
    conn = conn or connect(settings)
    token = keys.poll_job_id(mailbox_id, uuid.uuid4().hex[:12])
    ttl = queued_ttl(settings)
    if not claim(conn, mailbox_id, token, ttl):
        current = holder(conn, mailbox_id)
        if current is not None and not claim_is_dead(settings, conn, mailbox_id, current):
            return current, False
        taken = steal(conn, mailbox_id, current, token, ttl) if current is not None else claim(conn, mailbox_id, token, ttl)
        if not taken:  # lost a race to another submitter: theirs counts
            return holder(conn, mailbox_id) or token, False
    try:
        queue(settings, queue_name, conn).enqueue_call(
            keys.POLL_JOB,
            args=(mailbox_id,),
            kwargs={"force": True} if manual else None,
            job_id=token,
            timeout=settings.job_timeout,
            ttl=ttl,
            result_ttl=MANUAL_RESULT_TTL if manual else 0,
            failure_ttl=POLL_FAILURE_TTL,
            description=f"poll mailbox {mailbox_id}",
        )
    except BaseException:
        release(conn, mailbox_id, token)
        raise
    return token, True


def cancel_queued_poll(conn: redis.Redis, mailbox_id: int) -> str | None:
    """Delete the mailbox's poll if it is still waiting in a queue; a running poll is left alone."""
    current = holder(conn, mailbox_id)
    if current is None:
        return None
    job = Job.fetch_many([current], connection=conn)[0]
    if job is None or job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        if job is not None:
            job.delete(remove_from_queue=True)
        release(conn, mailbox_id, current)
        return current
    return None
