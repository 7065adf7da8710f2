"""The per-mailbox poll claim: one Redis key that says "a poll of mailbox N is queued or running".

``mailq:poll:<mailbox id>`` holds the token (the poll job's id) of its owner
and always has a TTL, so nothing blocks a mailbox forever:

* the scheduler (or ``poll now``) claims it with the new job's id and a long
  TTL covering the wait in the queue (the job gets the same RQ ``ttl``, so a
  claim and its job expire together);
* the job, once running, adopts it (same token) with the short ``lock_ttl``
  and renews it while it polls; a SIGKILLed work-horse stops renewing, and the
  mailbox is free again within ``lock_ttl``;
* every exit path releases it by compare-and-delete, so a late release never
  frees someone else's claim.

One key for marker and lock means a tick can never enqueue a second poll
while one waits or runs, and two polls of one mailbox never overlap.
"""

from __future__ import annotations

import redis

from .queues import KEY_PREFIX

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Renew if ours; take it if free (e.g. after a flushed Redis); 0 if someone else holds it.
_RENEW = """
local v = redis.call('get', KEYS[1])
if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"""


class LockLost(RuntimeError):
    """Raised inside a poll when another poll took over its mailbox (its claim expired meanwhile)."""


def key(mailbox_id: int) -> str:
    return f"{KEY_PREFIX}poll:{mailbox_id}"


def claim(conn: redis.Redis, mailbox_id: int, token: str, ttl: float) -> bool:
    """Take the mailbox's claim if nobody holds it."""
    return bool(conn.set(key(mailbox_id), token, px=int(ttl * 1000), nx=True))


def holder(conn: redis.Redis, mailbox_id: int) -> str | None:
    value = conn.get(key(mailbox_id))
    return value.decode() if value is not None else None


def holders(conn: redis.Redis, mailbox_ids: list[int]) -> dict[int, str]:
    """Claims of many mailboxes in one round trip (mailbox id -> token)."""
    if not mailbox_ids:
        return {}
    values = conn.mget([key(m) for m in mailbox_ids])
    return {m: v.decode() for m, v in zip(mailbox_ids, values) if v is not None}


def renew(conn: redis.Redis, mailbox_id: int, token: str, ttl: float) -> bool:
    """Extend our claim (or re-take a vanished one); False when another owner holds it."""
    return bool(conn.eval(_RENEW, 1, key(mailbox_id), token, int(ttl * 1000)))


def release(conn: redis.Redis, mailbox_id: int, token: str) -> bool:
    """Drop the claim only if it is still ours."""
    return bool(conn.eval(_RELEASE, 1, key(mailbox_id), token))


def steal(conn: redis.Redis, mailbox_id: int, old: str, new: str, ttl: float) -> bool:
    """Replace a claim known to be dead (its job failed or vanished) with ours, atomically."""
    script = """
    if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
    return 0
    """
    return bool(conn.eval(script, 1, key(mailbox_id), old, new, int(ttl * 1000)))


def forget(conn: redis.Redis, mailbox_id: int) -> None:
    """Drop the claim whoever holds it (mailbox removal)."""
    conn.delete(key(mailbox_id))


# Dispatch claims: which dispatch job owns each committed-but-undispatched message.
# They live in Redis beside the jobs on purpose: a flushed Redis loses both, and the
# outbox sweep then re-dispatches exactly the messages whose job vanished.
DISPATCH_CLAIMS = f"{KEY_PREFIX}dispatch:claims"
DROPPED = "dropped"
"""Claim value for messages whose failed dispatch an operator deleted: the sweep leaves them alone."""


def claim_messages(pipe, message_ids: list[int], job_id: str) -> None:
    """Record (on a pipeline, with the enqueue) that ``job_id`` dispatches these messages."""
    if message_ids:
        pipe.hset(DISPATCH_CLAIMS, mapping={str(m): job_id for m in message_ids})


def message_claims(conn: redis.Redis, message_ids: list[int]) -> dict[int, str]:
    if not message_ids:
        return {}
    values = conn.hmget(DISPATCH_CLAIMS, [str(m) for m in message_ids])
    return {m: v.decode() for m, v in zip(message_ids, values) if v is not None}


def drop_message_claims(conn: redis.Redis, message_ids: list[int]) -> None:
    if message_ids:
        conn.hdel(DISPATCH_CLAIMS, *[str(m) for m in message_ids])


def abandon_message_claims(conn: redis.Redis, message_ids: list[int]) -> None:
    """Mark messages as given up (their failed dispatch job was deleted)."""
    if message_ids:
        conn.hset(DISPATCH_CLAIMS, mapping={str(m): DROPPED for m in message_ids})


def scan_message_claims(conn: redis.Redis, cursor: int, count: int = 1000) -> tuple[int, dict[int, str]]:
    cursor, page = conn.hscan(DISPATCH_CLAIMS, cursor, count=count)
    return cursor, {int(k): v.decode() for k, v in page.items()}


def jobs_alive(conn: redis.Redis, job_ids: set[str]) -> set[str]:
    """Which of these rq jobs still exist (queued, scheduled for a retry, running or failed)."""
    from rq.job import Job

    ids = sorted(job_ids)
    if not ids:
        return set()
    pipe = conn.pipeline(transaction=False)
    for j in ids:
        pipe.exists(Job.key_for(j))
    return {j for j, found in zip(ids, pipe.execute()) if found}
