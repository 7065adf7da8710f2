"""A poll under its claim, alone or as one of a group: what the poll jobs run.

A group job polls several due mailboxes in turn so that RQ's own bookkeeping
(about 16 Redis round trips and ~1 ms of CPU per job) is paid once for up to
``MAILQ_POLL_GROUP_SIZE`` idle polls instead of once each. Each mailbox is
still polled exactly as a single job polls it: under its own claim, with its
own poll run, health, schedule move and metrics. What grouping must not do is
let one mailbox touch another, so:

* a poll that raises (a bug, the database) does not fail the group: its
  mailbox is submitted again as a poll job of its own, which fails (or not)
  alone and lands in RQ's failed registry with its traceback, as before;
* a poll that runs past ``MAILQ_POLL_GROUP_PATIENCE`` (a hung server, a big
  ingest) does not hold up the rest: the claims thread's watchdog hands the
  mailboxes not yet started to a new group job at the front of the queue,
  which any free worker takes; and while the queue is empty (a worker may be
  idle) it hands on the back half of them, so a burst spreads over the workers;
* mailboxes that need a failing-poll slot go last, so a known-bad one never
  delays a healthy one in its group.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import redis
from rq.timeouts import JobTimeoutException

from . import claims, db, hot_sql, metrics, outbox, renewal, retry_slots, schedule
from .config import Settings
from .db import errors_as_mailq
from .errors import LockLost, NotFoundError
from .models import Mailbox
from .poll import PollResult, poll_mailbox
from .queues import poll_queue_name, queue
from .states import Outcome

log = logging.getLogger("mailq.polling")


def skipped(mailbox_id: int, reason: str) -> dict[str, Any]:
    return {"mailbox_id": mailbox_id, "outcome": Outcome.SKIPPED, "reason": reason}


def _still_enabled(mailbox_id: int) -> bool:
    """Read again after the poll: an operator may have paused (or removed) the mailbox meanwhile."""
    with errors_as_mailq():
        return Mailbox.select().where((Mailbox.id == mailbox_id) & Mailbox.enabled_clause()).exists()


def poll_claimed(
    settings: Settings, conn: redis.Redis, mailbox_id: int, token: str, *, force: bool = False, mailbox: Mailbox | None = None
) -> dict[str, Any]:
    """Poll one mailbox under the claim ``token`` (a poll or group job's id).

    Skips (without logging in) when another poll holds the mailbox, and (a failing
    mailbox) when no failing-poll slot is free. Adopting the claim moves the
    recurring entry to one interval later, before any login (so the schedule cannot
    fire again while this poll's clock runs); afterwards ``_end`` moves it from the
    result, and a poll that stopped at its budget with more mail waiting enqueues
    the next one at once. ``mailbox``: its row, if the caller has just read it.
    """
    if mailbox is None:
        try:
            mailbox = hot_sql.mailbox(mailbox_id)  # the SQL is built once per process
        except Exception:
            claims.release(conn, mailbox_id, token)  # the database failed: the claim goes with this job
            raise
        if mailbox is None:
            claims.release(conn, mailbox_id, token)
            return skipped(mailbox_id, "mailbox no longer exists")
    started = time.time()
    if not claims.adopt(conn, mailbox_id, token, settings.lock_ttl, defer_to=started + mailbox.interval):
        return skipped(mailbox_id, "another poll of this mailbox is running")
    ended = False
    try:
        with renewal.Renewer(conn, mailbox_id, token, settings.lock_ttl) as renewer:
            with retry_slots.slot(settings, conn, mailbox) as allowed:
                if not allowed:
                    return skipped(mailbox_id, retry_slots.BUSY)
                counter = metrics.IngestCounter(outbox.batch_enqueuer(settings, conn))
                result = poll_mailbox(settings, mailbox_id, on_batch=counter, heartbeat=renewer.check, force=force, mailbox=mailbox)
        _end(conn, mailbox_id, token, result, counter, started)
        ended = True
    except LockLost as exc:
        return skipped(mailbox_id, str(exc))
    except NotFoundError:
        return skipped(mailbox_id, "mailbox no longer exists")
    finally:
        if not ended:
            try:
                claims.release(conn, mailbox_id, token)
            except redis.exceptions.RedisError:
                log.warning("mailbox %s: could not release its claim; it expires in %ss", mailbox_id, settings.lock_ttl)
    if result.more_pending and _still_enabled(mailbox_id):
        claims.submit_poll(settings, mailbox_id, result.queue, conn=conn)
    return result.as_dict()


def _end(conn: redis.Redis, mailbox_id: int, token: str, result: PollResult, counter: metrics.IngestCounter, started: float) -> None:
    """A poll's end in Redis in one round trip, in this order: its metrics, the schedule's move
    (``schedule.after_poll``, while the claim is still held), the claim's release."""
    pipe = conn.pipeline(transaction=False)
    metrics.record_poll(pipe, result.outcome, result.duration_s, counter.stored, counter.bytes, result.skipped)
    schedule.after_poll(pipe, result, started)
    claims.release(conn, mailbox_id, token, pipe=pipe)
    try:
        pipe.execute()
    except redis.exceptions.NoScriptError:  # Redis forgot the script (a restart): the rest ran; this loads it
        claims.release(conn, mailbox_id, token)


class _Group:
    """The mailboxes of one group job not started yet; the claims thread ticks it (``renewal.watch``)."""

    def __init__(self, settings: Settings, conn: redis.Redis, token: str, queue_name: str, rows: list[Mailbox]):
        self.settings, self.conn, self.token, self.queue_name = settings, conn, token, queue_name
        self.queue_key = queue(settings, queue_name, conn).key
        self.pending = collections.deque(rows)
        self.lock = threading.Lock()
        self.current_since = time.monotonic()
        self.handed_off: list[int] = []

    def next(self) -> Mailbox | None:
        with self.lock:
            self.current_since = time.monotonic()
            return self.pending.popleft() if self.pending else None

    def tick(self, now: float) -> None:
        """Hand on every pending mailbox once the current poll outruns the patience, or the back half
        while the queue is empty (a worker may be idle: a group never keeps polls from it)."""
        with self.lock:
            if not self.pending:
                return
            slow = now - self.current_since >= self.settings.poll_group_patience
        try:
            if not slow and (len(self.pending) < 2 or self.conn.llen(self.queue_key) > 0):
                return
            with self.lock:
                keep = 0 if slow else len(self.pending) // 2
                rows = [self.pending.pop() for _ in range(len(self.pending) - keep)][::-1]
        except Exception:  # Redis away: nothing was taken; the next tick looks again
            return
        if not rows:
            return
        try:
            self.handed_off += claims.hand_off(self.settings, self.conn, [r.id for r in rows], self.token, self.queue_name)
            log.debug("group %s: %d mailbox(es) handed on (%s)", self.token, len(rows), "slow poll" if slow else "queue empty")
        except Exception:  # Redis away: keep them and try again next tick (their claims are still ours)
            log.warning("group %s: could not hand on %d mailbox(es); retrying", self.token, len(rows), exc_info=True)
            with self.lock:
                self.pending.extend(rows)


def poll_group(settings: Settings, conn: redis.Redis, mailbox_ids: list[int], token: str, queue_name: str) -> dict[str, Any]:
    """Poll each mailbox of a group job in turn (see the module's docstring); returns counts."""
    rows = hot_sql.mailboxes(mailbox_ids)
    gone = [m for m in mailbox_ids if m not in rows]
    for mailbox_id in gone:
        claims.release(conn, mailbox_id, token)
    ordered = sorted((rows[m] for m in mailbox_ids if m in rows), key=retry_slots.needs_slot)  # healthy first, known-bad last
    group = _Group(settings, conn, token, queue_name, ordered)
    outcomes: collections.Counter = collections.Counter()
    resubmitted = 0
    renewal.watch(group)
    try:
        while (mailbox := group.next()) is not None:
            try:
                outcomes[poll_claimed(settings, conn, mailbox.id, token, mailbox=mailbox)["outcome"]] += 1
            except JobTimeoutException:
                raise  # RQ's job timeout ends the whole job, as for a single poll
            except Exception:
                # its claim is released: a job of its own polls it again, alone, and keeps any traceback
                log.warning("mailbox %s: its poll failed inside a group; polling it again as a job of its own", mailbox.id)
                db.close()  # a failed poll may have broken the connection; the next read reopens it
                claims.submit_poll(settings, mailbox.id, poll_queue_name(mailbox.priority), conn=conn)
                resubmitted += 1
    finally:
        renewal.unwatch(group)
    return {
        "mailboxes": len(mailbox_ids),
        "outcomes": dict(outcomes),
        "gone": len(gone),
        "handed_on": len(group.handed_off),
        "resubmitted": resubmitted,
    }
