"""Every name mailq gives things in Redis, the RQ job paths, and the Lua scripts: spelled here only.

Keys mailq owns start with ``mailq:``; rq and rq-scheduler keep their own
(``rq:``, ``rq_scheduler:``), and the ones mailq reads are named here too.
Scripts are registered once per connection (redis-py ``register_script``:
EVALSHA, loading the script again only when a Redis restart forgot it).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterator
from typing import NamedTuple

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq_scheduler import Scheduler

KEY_PREFIX = "mailq:"
"""Every Redis key mailq itself owns starts with this (rq's own keys start with ``rq:``)."""

# The functions RQ runs (see jobs.py); jobs are enqueued by path so a producer need not import them.
POLL_JOB = "mailq.jobs.poll"
POLL_GROUP_JOB = "mailq.jobs.poll_group"
DISPATCH_JOB = "mailq.jobs.dispatch"
NOOP_JOB = "mailq.jobs.noop"

SCHEDULED = Scheduler.scheduled_jobs_key
"""rq-scheduler's ZSET of recurring entries (score = next run, epoch seconds)."""
DISPATCH_CLAIMS = f"{KEY_PREFIX}dispatch:claims"
"""Hash message id -> the dispatch job that owns it (see outbox.py)."""
SCHEDULER_ALIVE = f"{KEY_PREFIX}scheduler:alive"
"""JSON {name, pid, host, at} of the last scheduler that looped; expires when none does."""
SCHEDULER_RECONCILED = f"{KEY_PREFIX}scheduler:last_reconcile"
"""ISO time of the last finished reconcile (the console shows it)."""
RECONCILE_LOCK = f"{KEY_PREFIX}scheduler:reconcile_lock"
FAILING_POLL_SLOTS = f"{KEY_PREFIX}failing_poll_slots"
"""ZSET of failing-poll slot holders (score = when each expires; see retry_slots.py)."""

_ENTRY_RE = re.compile(r"^mbx-(\d+)$")


def poll_claim(mailbox_id: int) -> str:
    """The mailbox's poll claim (see claims.py)."""
    return f"{KEY_PREFIX}poll:{mailbox_id}"


def oauth_refresh_lock(mailbox_id: int) -> str:
    """Serializes one mailbox's token refresh across every process (a reused refresh token may revoke its family)."""
    return f"{KEY_PREFIX}oauth-refresh:{mailbox_id}"


def schedule_entry(mailbox_id: int) -> str:
    """The recurring entry's id (rq job ids allow only letters, digits, ``_`` and ``-``)."""
    return f"mbx-{mailbox_id}"


def mailbox_of_entry(entry_id: str) -> int | None:
    """The mailbox a recurring entry id belongs to; None for an entry that is not mailq's."""
    m = _ENTRY_RE.match(entry_id)
    return int(m.group(1)) if m else None


def poll_job_id(mailbox_id: int, token: str) -> str:
    return f"poll-{mailbox_id}-{token}"


def poll_group_job_id(token: str) -> str:
    """A job polling several mailboxes, each under its own claim holding this id (see polling.py)."""
    return f"polls-{token}"


def dispatch_job_id(first_message_id: int, token: str) -> str:
    return f"dsp-{first_message_id}-{token}"


# Compare-and-delete: drop a key only while it still holds our token.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Renew if ours; take it if free (e.g. after a flushed Redis); 0 if someone else holds it.
# With KEYS[2] (the schedule) and ARGV[3..4], a claim renewed or taken also moves that entry to the later
# of its run and ARGV[4] (ZADD XX GT, as ``schedule.defer``): a poll starting is one round trip.
RENEW = """
local v = redis.call('get', KEYS[1])
local got = 0
if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) got = 1
elseif not v then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) got = 2 end
if got > 0 and KEYS[2] then redis.call('zadd', KEYS[2], 'XX', 'GT', ARGV[4], ARGV[3]) end
return got
"""
# Replace a token known to be dead with ours, only if it is still the one there.
STEAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""


# Take a failing-poll slot: drop expired holders, then join if fewer than ARGV[2] remain.
TAKE_SLOT = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('zadd', KEYS[1], ARGV[3], ARGV[4])
  return 1
end
return 0
"""


class Scripts(NamedTuple):
    release: Script
    renew: Script
    steal: Script
    take_slot: Script


_scripts: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()


def scripts(conn: redis.Redis) -> Scripts:
    """The Lua scripts, registered on ``conn`` the first time it asks."""
    found = _scripts.get(conn)
    if found is None:
        found = _scripts[conn] = Scripts(*(conn.register_script(text) for text in (RELEASE, RENEW, STEAL, TAKE_SLOT)))
    return found


def queue_script(pipe: Pipeline, script: Script, keys: list[str], args: list) -> None:
    """Add a registered script to ``pipe`` as a bare EVALSHA.

    redis-py's own way (calling the script with ``client=pipe``) sends SCRIPT EXISTS
    before every pipeline it is in: the round trip a pipeline is there to save. If
    Redis has lost the script (restarted), ``execute`` raises ``NoScriptError``
    after running the rest; calling the script itself then loads it.
    """
    pipe.evalsha(script.sha, len(keys), *keys, *args)


@contextlib.contextmanager
def batch(conn: redis.Redis | Pipeline) -> Iterator[Pipeline]:
    """A pipeline for a few commands: ``conn`` itself when it already is one (its owner sends it
    with more in one round trip), else a new one, sent on exit."""
    if isinstance(conn, Pipeline):
        yield conn
        return
    pipe = conn.pipeline(transaction=False)
    yield pipe
    pipe.execute()
