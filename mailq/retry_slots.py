"""A farm-wide cap on polls of failing mailboxes running at once, so they hold a bounded share of the workers.

Backoff alone does not bound it: each failing mailbox holds at most one worker
(its claim) for at most one poll (MAILQ_POLL_BUDGET_SECONDS + MAILQ_READ_TIMEOUT,
see ``wire``), but a hundred failing mailboxes retrying at once can still take
every worker. A mailbox that keeps failing (its last poll timed out, which is
what holds a worker, or its last two polls or more failed) polls only while it holds one of
MAILQ_FAILING_POLL_SLOTS slots (a Redis sorted set of holders, each expiring
after the longest a poll can take, so a killed worker's slot frees itself);
without a slot the poll is skipped without connecting and the next interval
tries again. Healthy mailboxes never need a slot, nor does the first retry
after one quick failure (a dropped connection) or a folder error: at
least ``workers - MAILQ_FAILING_POLL_SLOTS`` workers are always theirs.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import redis

from .config import Settings
from .health import FOLDER_ERROR
from .keys import FAILING_POLL_SLOTS as KEY
from .keys import scripts
from .models import Mailbox
from .states import State

BUSY = "deferred: every MAILQ_FAILING_POLL_SLOTS slot is taken by a poll of another failing mailbox"


def needs_slot(mailbox: Mailbox) -> bool:
    if mailbox.state != State.FAILING or mailbox.last_error_class == FOLDER_ERROR:
        return False
    return mailbox.last_error_class == "timeout" or (mailbox.consecutive_failures or 0) >= 2


@contextlib.contextmanager
def slot(settings: Settings, conn: redis.Redis, mailbox: Mailbox) -> Iterator[bool]:
    """Yields whether this poll may run: always for a healthy mailbox, for a failing one only with a free slot."""
    if not needs_slot(mailbox):
        yield True
        return
    token = uuid.uuid4().hex
    now = time.time()
    longest = settings.connect_timeout + settings.poll_budget_seconds + 2 * settings.read_timeout
    got = bool(scripts(conn).take_slot(keys=[KEY], args=[now, settings.failing_poll_slots, now + longest, token]))
    try:
        yield got
    finally:
        if got:
            try:
                conn.zrem(KEY, token)
            except redis.exceptions.RedisError:
                pass  # it expires by itself
