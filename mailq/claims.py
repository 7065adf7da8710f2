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
from redis.client import Pipeline
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


def adopt(conn: redis.Redis, mailbox_id: int, token: str, ttl: float, *, defer_to: float | None = None) -> bool:
    """Extend our claim to ``ttl`` (or re-take a vanished one); False when another owner holds it.

    A running poll adopts its claim with this (same token, the short ``lock_ttl``),
    and ``renewal.Renewer`` calls it again as the TTL runs down. ``defer_to``: in
    the same call, once the claim is ours, move the recurring entry no earlier
    than then (``schedule.defer``).
    """
    if defer_to is None:
        return bool(keys.scripts(conn).renew(keys=[keys.poll_claim(mailbox_id)], args=[token, int(ttl * 1000)]))
    return bool(
        keys.scripts(conn).renew(
            keys=[keys.poll_claim(mailbox_id), keys.SCHEDULED],
            args=[token, int(ttl * 1000), keys.schedule_entry(mailbox_id), int(defer_to + 0.999)],
        )
    )


def release(conn: redis.Redis, mailbox_id: int, token: str, *, pipe: Pipeline | None = None) -> bool:
    """Drop the claim only if it is still ours; with ``pipe``, queued there (the caller sends it)."""
    if pipe is not None:
        keys.queue_script(pipe, keys.scripts(conn).release, [keys.poll_claim(mailbox_id)], [token])
        return True
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
    if not _waiting(settings, remaining_ms):
        return False  # adopted by a running poll (or about to expire by itself)
    age_s = queued_ttl(settings) - remaining_ms / 1000
    if age_s < CLAIM_GRACE_S or origin is None:
        return False
    return conn.lpos(queue(settings, origin.decode(), conn).key, token) is None


def _waiting(settings: Settings, remaining_ms: int) -> bool:
    """A claim's TTL says whether its poll has started: adopting it cuts the TTL to ``lock_ttl``."""
    return remaining_ms > settings.lock_ttl * 1000


def waiting(settings: Settings, conn: redis.Redis, mailbox_id: int) -> bool:
    """Whether the mailbox's claimed poll has yet to start (queued, or waiting its turn in a running group)."""
    return _waiting(settings, conn.pttl(keys.poll_claim(mailbox_id)))


def _take_held(settings: Settings, conn: redis.Redis, mailbox_id: int, token: str, ttl: float) -> bool:
    """After SET NX failed: take the claim if it has meanwhile gone, or its holder is dead."""
    current = holder(conn, mailbox_id)
    if current is None:
        return claim(conn, mailbox_id, token, ttl)
    return claim_is_dead(settings, conn, mailbox_id, current) and steal(conn, mailbox_id, current, token, ttl)


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
    if not claim(conn, mailbox_id, token, ttl) and not _take_held(settings, conn, mailbox_id, token, ttl):
        return holder(conn, mailbox_id) or token, False  # a live poll (or the submitter that won a race) counts
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


def submit_group(settings: Settings, conn: redis.Redis, mailbox_ids: list[int], queue_name: str) -> list[int]:
    """Claim several due mailboxes and enqueue one job polling them in turn; returns the ones submitted.

    Each mailbox's claim holds the group job's id, so everything that reads
    claims (``claim_is_dead``, the console, ``cancel_queued_poll``) works as for
    a single poll. A mailbox whose poll is still queued or running is left out.
    """
    if len(mailbox_ids) == 1:
        return mailbox_ids if submit_poll(settings, mailbox_ids[0], queue_name, conn=conn)[1] else []
    token = keys.poll_group_job_id(uuid.uuid4().hex[:12])
    ttl = queued_ttl(settings)
    pipe = conn.pipeline(transaction=False)
    for mailbox_id in mailbox_ids:
        pipe.set(keys.poll_claim(mailbox_id), token, px=int(ttl * 1000), nx=True)
    taken = [m for m, ok in zip(mailbox_ids, pipe.execute()) if ok]
    taken += [
        m for m in sorted(set(mailbox_ids) - set(taken)) if _take_held(settings, conn, m, token, ttl)
    ]  # held: by a live poll, as a rule
    if taken:
        _enqueue_group(settings, conn, taken, token, queue_name, at_front=False)
    return taken


def hand_off(settings: Settings, conn: redis.Redis, mailbox_ids: list[int], old_token: str, queue_name: str) -> list[int]:
    """Move mailboxes a group has not started yet to a new group job at the front of the queue.

    Each claim changes hands atomically (compare-and-set on the old group's
    token), so a mailbox the old group has meanwhile started stays with it.
    Returns the mailboxes moved.
    """
    token = keys.poll_group_job_id(uuid.uuid4().hex[:12])
    ttl_ms = int(queued_ttl(settings) * 1000)
    steal_script = keys.scripts(conn).steal
    pipe = conn.pipeline(transaction=False)
    for mailbox_id in mailbox_ids:
        steal_script(keys=[keys.poll_claim(mailbox_id)], args=[old_token, token, ttl_ms], client=pipe)
    moved = [m for m, ok in zip(mailbox_ids, pipe.execute()) if ok]
    if moved:
        _enqueue_group(settings, conn, moved, token, queue_name, at_front=True)
    return moved


def group_timeout(settings: Settings) -> int:
    """A group runs one poll at a time and hands the rest on after its patience: one poll's limit, plus that."""
    return settings.job_timeout + int(settings.poll_group_patience) + 5


def _enqueue_group(settings: Settings, conn: redis.Redis, mailbox_ids: list[int], token: str, queue_name: str, *, at_front: bool) -> None:
    shown = ", ".join(map(str, mailbox_ids[:10])) + (", ..." if len(mailbox_ids) > 10 else "")
    try:
        queue(settings, queue_name, conn).enqueue_call(
            keys.POLL_GROUP_JOB,
            args=(list(mailbox_ids),),
            job_id=token,
            timeout=group_timeout(settings),
            ttl=queued_ttl(settings),
            result_ttl=0,
            failure_ttl=POLL_FAILURE_TTL,
            description=f"poll mailboxes {shown}",
            at_front=at_front,
        )
    except BaseException:
        pipe = conn.pipeline(transaction=False)
        for mailbox_id in mailbox_ids:
            keys.scripts(conn).release(keys=[keys.poll_claim(mailbox_id)], args=[token], client=pipe)
        pipe.execute()
        raise


def cancel_queued_poll(conn: redis.Redis, mailbox_id: int) -> str | None:
    """Delete the mailbox's poll if it is still waiting in a queue; a running poll is left alone."""
    current = holder(conn, mailbox_id)
    if current is None:
        return None
    job = Job.fetch_many([current], connection=conn)[0]
    if job is not None and job.func_name == keys.POLL_GROUP_JOB:
        release(conn, mailbox_id, current)  # the group's other mailboxes keep their poll; this one skips (paused or gone)
        return current
    if job is None or job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        if job is not None:
            job.delete(remove_from_queue=True)
        release(conn, mailbox_id, current)
        return current
    return None
