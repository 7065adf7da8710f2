"""What push means for one mailbox right now: for the scheduler (skip a poll?) and for people (show, console).

A mailbox is *pushed* while an idler holds its lease and reports it connected.
The scheduler keeps its normal entry for every mailbox; when a due entry finds
the mailbox pushed, it polls only if the safety marker (``MAILQ_PUSH_SAFETY_INTERVAL``)
has lapsed. So a dead idler costs nothing to recover from: its lease lapses
within ``idler_lease_ttl`` and the very next due entry polls at the normal interval.
"""

from __future__ import annotations

import weakref

import redis
from redis.commands.core import Script

from ..keys import KEY_PREFIX
from . import leases

# KEYS[1] lease, KEYS[2] safety marker; ARGV[1] mailbox id, ARGV[2] safety interval, ARGV[3] states-key prefix
_SKIP = """
local owner = redis.call('get', KEYS[1])
if not owner then return 0 end
if redis.call('hget', ARGV[3] .. owner .. ':states', ARGV[1]) ~= 'connected' then return 0 end
if redis.call('set', KEYS[2], '1', 'EX', ARGV[2], 'NX') then return 0 end
return 1
"""


def safety_key(mailbox_id: int) -> str:
    return f"{KEY_PREFIX}push:safety:{mailbox_id}"


def start_safety_windows(conn: redis.Redis, mailbox_ids: list[int], safety_interval: int) -> None:
    """A fresh IDLE connection has just looked at the folder (and polled if it moved): the first safety
    poll is due one safety interval from now, not at the next due entry (10,000 connects are no poll burst)."""
    pipe = conn.pipeline(transaction=False)
    for mid in mailbox_ids:
        pipe.set(safety_key(mid), "1", ex=safety_interval, nx=True)
    pipe.execute()


_skip_scripts: weakref.WeakKeyDictionary[redis.Redis, Script] = weakref.WeakKeyDictionary()


def skip_scheduled_polls(conn: redis.Redis, mailbox_ids: list[int], safety_interval: int) -> set[int]:
    """The mailboxes that are pushed and had a safety poll within ``safety_interval`` (one round trip for all)."""
    script = _skip_scripts.get(conn)
    if script is None:
        script = _skip_scripts[conn] = conn.register_script(_SKIP)
    prefix = f"{KEY_PREFIX}idler:"
    pipe = conn.pipeline(transaction=False)
    for mailbox_id in mailbox_ids:
        script(keys=[leases.lease_key(mailbox_id), safety_key(mailbox_id)], args=[mailbox_id, safety_interval, prefix], client=pipe)
    return {m for m, skip in zip(mailbox_ids, pipe.execute()) if skip}


def describe(push: str, held: tuple[str, str | None] | None, noidle: bool, polled_once: bool) -> tuple[str, str]:
    """(short state, sentence) for a mailbox: pushed | reconnecting | parked | polled."""
    if push == "off":
        return "polled", "polled only (push off)"
    if held is not None:
        idler, state = held
        if state == leases.CONNECTED:
            return "pushed", f"pushed: IDLE connected (idler {idler})"
        if state == leases.PARKED:
            return "polled", f"polled only: login rejected, idler {idler} waits for new credentials"
        return "reconnecting", f"reconnecting: idler {idler} is re-opening its IDLE connection; polled meanwhile"
    if noidle:
        return "polled", "polled only: the server does not offer IDLE"
    if not polled_once:
        return "polled", "polled only until its first poll ends (then pushed)"
    return "polled", "polled only: no idler holds it (start `mailq idler`)"


def of_mailboxes(conn: redis.Redis, mailboxes: list) -> dict[int, tuple[str, str]]:
    """``describe`` for many mailbox rows in a few round trips."""
    ids = [m.id for m in mailboxes if m.push != "off"]
    held = leases.holders(conn, ids)
    missing = leases.noidle(conn) if len(held) < len(ids) else {}
    return {m.id: describe(m.push, held.get(m.id), m.id in missing, m.last_poll_at is not None) for m in mailboxes}
