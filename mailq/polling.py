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

from . import claims, db, metrics, outbox, reads, renewal, retry_slots, schedule
from .config import Settings
from .db import errors_as_mailq
from .errors import LockLost, NotFoundError
from .models import Mailbox
from .poll import poll_mailbox
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
    mailbox) when no failing-poll slot is free. As it starts, the recurring entry
    moves to one interval later (so the schedule cannot fire again while this
    poll's clock runs); afterwards ``schedule.after_poll`` moves it from the
    result, and a poll that stopped at its budget with more mail waiting enqueues
    the next one at once. ``mailbox``: its row, if the caller has just read it.
    """
    if not claims.adopt(conn, mailbox_id, token, settings.lock_ttl):
        return skipped(mailbox_id, "another poll of this mailbox is running")
    started = time.time()
    try:
        with renewal.Renewer(conn, mailbox_id, token, settings.lock_ttl) as renewer:
            mailbox = mailbox or reads.mailbox(mailbox_id)  # the SQL is built once per process
            if mailbox is None:
                return skipped(mailbox_id, "mailbox no longer exists")
            schedule.defer(conn, mailbox_id, started + mailbox.interval)  # before any login
            with retry_slots.slot(settings, conn, mailbox) as allowed:
                if not allowed:
                    return skipped(mailbox_id, retry_slots.BUSY)
                counter = metrics.IngestCounter(outbox.batch_enqueuer(settings, conn))
                result = poll_mailbox(settings, mailbox_id, on_batch=counter, heartbeat=renewer.check, force=force, mailbox=mailbox)
            metrics.record_poll(conn, result.outcome, result.duration_s, counter.stored, counter.bytes, result.skipped)
            schedule.after_poll(conn, result, started)
    except LockLost as exc:
        return skipped(mailbox_id, str(exc))
    except NotFoundError:
        return skipped(mailbox_id, "mailbox no longer exists")
    finally:
        try:
            claims.release(conn, mailbox_id, token)
        except redis.exceptions.RedisError:
            log.warning("mailbox %s: could not release its claim; it expires in %ss", mailbox_id, settings.lock_ttl)
    if result.more_pending and _still_enabled(mailbox_id):
        claims.submit_poll(settings, mailbox_id, result.queue, conn=conn)
    return result.as_dict()


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
    rows = reads.mailboxes(mailbox_ids)
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
