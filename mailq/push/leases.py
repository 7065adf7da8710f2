"""Idler leases in Redis: which idler process holds the IDLE connection of which mailbox.

* ``mailq:idler:lease:<mailbox id>`` = idler name, with a TTL (``idler_lease_ttl``).
  Taken with SET NX, renewed by compare-and-expire, released by compare-and-delete:
  two idlers never hold one mailbox, and a SIGKILLed idler's leases lapse by themselves.
* ``mailq:idlers`` is a ZSET of live idlers (score = heartbeat expiry, ms); the
  fair share of each is ``ceil(pushable mailboxes / live idlers)``.
* ``mailq:idler:<name>:states`` is a hash mailbox id -> connection state of that
  idler (``connected``, ``reconnecting``, ``parked``), expiring with its heartbeat.
  A state counts only while the mailbox's lease names the same idler.
* ``mailq:push:noidle`` is a hash mailbox id -> epoch seconds when its server was
  found without IDLE: such mailboxes are polled only, and re-checked after a day.

Leases are independent of the poll claims (``claims.py``): an idler never fetches.
"""

from __future__ import annotations

import time

import redis

from ..keys import KEY_PREFIX

IDLERS = f"{KEY_PREFIX}idlers"
NOIDLE = f"{KEY_PREFIX}push:noidle"
NOIDLE_RECHECK_S = 24 * 3600
CONNECTED, RECONNECTING, PARKED = "connected", "reconnecting", "parked"
_CHUNK = 1000

_RENEW_MANY = """
local lost = {}
for i, k in ipairs(KEYS) do
  if redis.call('get', k) == ARGV[1] then redis.call('pexpire', k, ARGV[2]) else lost[#lost + 1] = i end
end
return lost
"""
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def lease_key(mailbox_id: int) -> str:
    return f"{KEY_PREFIX}idler:lease:{mailbox_id}"


def states_key(idler: str) -> str:
    return f"{KEY_PREFIX}idler:{idler}:states"


def heartbeat(conn: redis.Redis, idler: str, ttl: float) -> int:
    """Say this idler is alive for ``ttl`` more seconds; returns how many idlers are alive."""
    now_ms = int(time.time() * 1000)
    pipe = conn.pipeline(transaction=False)
    pipe.zadd(IDLERS, {idler: now_ms + int(ttl * 1000)})
    pipe.zremrangebyscore(IDLERS, "-inf", now_ms)
    pipe.zcard(IDLERS)
    pipe.pexpire(states_key(idler), int(ttl * 1000))
    return max(1, pipe.execute()[2])


def leave(conn: redis.Redis, idler: str) -> None:
    """A clean exit: others see one idler fewer at once (the leases are released separately)."""
    pipe = conn.pipeline(transaction=False)
    pipe.zrem(IDLERS, idler)
    pipe.delete(states_key(idler))
    pipe.execute()


def live_idlers(conn: redis.Redis) -> list[str]:
    return [m.decode() for m in conn.zrangebyscore(IDLERS, int(time.time() * 1000), "+inf")]


def renew(conn: redis.Redis, idler: str, mailbox_ids: list[int], ttl: float) -> list[int]:
    """Extend every lease we hold; returns the mailboxes whose lease is no longer ours (stop them now)."""
    lost: list[int] = []
    for i in range(0, len(mailbox_ids), _CHUNK):
        chunk = mailbox_ids[i : i + _CHUNK]
        gone = conn.eval(_RENEW_MANY, len(chunk), *[lease_key(m) for m in chunk], idler, int(ttl * 1000))
        lost.extend(chunk[j - 1] for j in gone)
    return lost


def claim(conn: redis.Redis, idler: str, candidates: list[int], want: int, ttl: float) -> list[int]:
    """Take up to ``want`` free leases among ``candidates`` (in the order given); returns those taken."""
    taken: list[int] = []
    for i in range(0, len(candidates), _CHUNK):
        if len(taken) >= want:
            break
        chunk = candidates[i : i + _CHUNK]
        free = [m for m, v in zip(chunk, conn.mget([lease_key(m) for m in chunk])) if v is None]
        free = free[: want - len(taken)]
        if not free:
            continue
        pipe = conn.pipeline(transaction=False)
        for m in free:
            pipe.set(lease_key(m), idler, px=int(ttl * 1000), nx=True)
        taken.extend(m for m, ok in zip(free, pipe.execute()) if ok)
    return taken


def release(conn: redis.Redis, idler: str, mailbox_ids: list[int]) -> None:
    """Give leases back (only those still ours) and forget their states."""
    if not mailbox_ids:
        return
    pipe = conn.pipeline(transaction=False)
    for m in mailbox_ids:
        pipe.eval(_RELEASE, 1, lease_key(m), idler)
    pipe.hdel(states_key(idler), *[str(m) for m in mailbox_ids])
    pipe.execute()


def publish_states(conn: redis.Redis, idler: str, states: dict[int, str | None]) -> None:
    """Write connection states (None deletes); readers trust them only under a matching lease."""
    put = {str(m): s for m, s in states.items() if s is not None}
    gone = [str(m) for m, s in states.items() if s is None]
    pipe = conn.pipeline(transaction=False)
    if put:
        pipe.hset(states_key(idler), mapping=put)
    if gone:
        pipe.hdel(states_key(idler), *gone)
    pipe.execute()


def mark_noidle(conn: redis.Redis, mailbox_id: int) -> None:
    conn.hset(NOIDLE, str(mailbox_id), int(time.time()))


def noidle(conn: redis.Redis) -> dict[int, float]:
    """Mailboxes whose server had no IDLE within the re-check period (mailbox id -> when found)."""
    cutoff = time.time() - NOIDLE_RECHECK_S
    return {int(k): float(v) for k, v in conn.hgetall(NOIDLE).items() if float(v) > cutoff}


def holders(conn: redis.Redis, mailbox_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """mailbox id -> (idler holding its lease, that idler's state for it), for held mailboxes only."""
    result: dict[int, tuple[str, str | None]] = {}
    for i in range(0, len(mailbox_ids), _CHUNK):
        chunk = mailbox_ids[i : i + _CHUNK]
        owners = [(m, v.decode()) for m, v in zip(chunk, conn.mget([lease_key(m) for m in chunk])) if v is not None]
        pipe = conn.pipeline(transaction=False)
        for m, owner in owners:
            pipe.hget(states_key(owner), str(m))
        for (m, owner), state in zip(owners, pipe.execute()):
            result[m] = (owner, state.decode() if state is not None else None)
    return result
