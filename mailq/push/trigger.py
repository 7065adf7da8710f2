"""The idler's one way into the poll path: submit a poll through the scheduler's claim, coalescing bursts.

The claim (one poll per mailbox queued or running) already coalesces: a burst
of EXISTS while a poll waits in the queue costs nothing, that poll sees the mail.
The one gap is mail arriving while a poll is *running* (past its search): the
claim refuses a second poll, so the mailbox is remembered and polled once more
as soon as that running poll lets go. At most one follow-up per burst.
"""

from __future__ import annotations

import redis

from ..claims import holder, submit_poll, waiting  # the claim path: the one place the idler enters it
from ..config import Settings


def submit(settings: Settings, conn: redis.Redis, mailbox_id: int, queue_name: str) -> str | None:
    """Make sure a poll that starts after now is queued; returns the running poll's token to wait for, if any."""
    token, new = submit_poll(settings, mailbox_id, queue_name, conn=conn)
    if new or waiting(settings, conn, mailbox_id):
        return None  # that poll has not started yet (queued, or still to come in its group): it will see the mail
    return token


def still_held(conn: redis.Redis, mailbox_id: int, token: str) -> bool:
    """Whether the poll we wait for still holds the mailbox."""
    return holder(conn, mailbox_id) == token
