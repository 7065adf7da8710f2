"""``mailq scheduler``: rq-scheduler's loop, plus reconcile, the outbox sweep and a liveness key.

Every ``scheduler_interval`` (1 s) one scheduler process (rq-scheduler's lock,
here with a token so a slow pass never deletes another's lock) moves due
entries: for a mailbox entry it does not push the entry itself but claims the
mailbox and enqueues a fresh poll job, and skips the push (still rescheduling)
while a poll of that mailbox is queued or running. No tick job runs at all, so
each poll costs one RQ job, and the queue never holds more
polls than there are mailboxes. Two schedulers cannot double-enqueue: passes
are serialized by the lock, and each push needs the mailbox's claim (SET NX).

Every ``reconcile_interval`` the schedule is reconciled with the database (a
flushed or restarted Redis heals itself) and the dispatch outbox is swept.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from rq_scheduler import Scheduler

from . import claims, health, history, keys, logs, outbox, schedule
from .config import Settings
from .errors import MailqError
from .push import status as push_status
from .queues import EMAIL, connect
from .queues import register as register_queues

log = logging.getLogger("mailq.scheduler")


class PollScheduler(Scheduler):
    """rq-scheduler whose mailbox entries enqueue a claimed poll instead of themselves."""

    def __init__(self, settings: Settings, connection: redis.Redis):
        name = f"mailq-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        super().__init__(queue_name=EMAIL, connection=connection, interval=settings.scheduler_interval, name=name)
        self.settings = settings
        self._lock_token: str | None = None
        self.pushed = self.skipped = 0

    # acquire_lock and remove_lock replace rq-scheduler's whole (its lock has no owner token), so
    # nothing here depends on its private lock state.
    def acquire_lock(self) -> bool:
        token = uuid.uuid4().hex
        acquired = bool(self.connection.set(self.scheduler_lock_key, token, ex=int(self.settings.scheduler_interval) + 10, nx=True))
        self._lock_token = token if acquired else None
        return acquired

    def remove_lock(self) -> None:
        if self._lock_token:
            claims.release_key(self.connection, self.scheduler_lock_key, self._lock_token)
        self._lock_token = None

    def get_jobs_to_queue(self, with_times=False):
        """Due entries in due order, ties by mailbox id as a number.

        Redis returns equal scores in string order (``mbx-21`` before ``mbx-3``),
        so a block of mailboxes scheduled for the same second was polled 21..29
        before 3..9 every time.
        """
        due = sorted(super().get_jobs_to_queue(with_times=True), key=_due_order)
        return due if with_times else [job for job, _ in due]

    def enqueue_job(self, job) -> None:
        mailbox_id = keys.mailbox_of_entry(job.id)
        if mailbox_id is None:  # not ours: rq-scheduler's usual behaviour
            return super().enqueue_job(job)
        interval = int(job.meta.get("interval") or self.settings.poll_interval)
        try:
            if push_status.skip_scheduled_poll(self.connection, mailbox_id, self.settings.push_safety_interval):
                self.skipped += 1  # an idler pushes it: only the safety poll (MAILQ_PUSH_SAFETY_INTERVAL) is due
                return
            _, new = claims.submit_poll(self.settings, mailbox_id, job.origin or EMAIL, conn=self.connection)
            if new:
                self.pushed += 1
            else:
                self.skipped += 1
        finally:
            schedule.defer(self.connection, mailbox_id, int(time.time()) + interval)


def _due_order(entry) -> tuple:
    job, when = entry
    mailbox_id = keys.mailbox_of_entry(job.id)
    return (when, 0, mailbox_id, "") if mailbox_id is not None else (when, 1, 0, job.id)


def _now_iso() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"


class Runner:
    """The loop of ``mailq scheduler``; ``stop()`` (or SIGTERM/SIGINT) ends it after the current pass."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.conn = connect(settings)
        self.scheduler = PollScheduler(settings, self.conn)
        self._stop = threading.Event()
        self._next_reconcile = 0.0
        self._claims_cursor = 0
        self._history_cursor = 0
        self._next_prune = 0.0
        self.passes = 0
        """Passes started (in the liveness record too: tests count passes instead of sleeping)."""

    def stop(self, *_args) -> None:
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info(
            "scheduler %s: checking every %.1fs, reconciling every %.0fs",
            self.scheduler.name,
            self.settings.scheduler_interval,
            self.settings.reconcile_interval,
        )
        registered = False
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    if not registered:
                        register_queues(self.conn)
                        self.scheduler.register_birth()
                        registered = True
                    self.tick()
                except (redis.exceptions.RedisError, MailqError) as exc:
                    log.warning("scheduler pass failed, retrying: %s", exc)
                    self._stop.wait(min(5.0, max(1.0, self.settings.scheduler_interval)))
                    continue
                self._stop.wait(max(0.0, self.settings.scheduler_interval - (time.monotonic() - started)))
        finally:
            try:
                self.scheduler.remove_lock()
                if registered:
                    self.scheduler.register_death()
            except redis.exceptions.RedisError:
                pass
            log.info("scheduler %s: stopped", self.scheduler.name)

    def tick(self) -> None:
        """One pass: liveness, due polls, and (when its time has come) reconcile + sweep."""
        self.scheduler.heartbeat()
        self.passes += 1
        alive = {"name": self.scheduler.name, "pid": os.getpid(), "host": socket.gethostname(), "at": _now_iso(), "passes": self.passes}
        alive = json.dumps(alive)
        self.conn.set(keys.SCHEDULER_ALIVE, alive, ex=max(10, int(self.settings.scheduler_interval * 5)))
        if self.scheduler.acquire_lock():
            try:
                self.scheduler.enqueue_jobs()
            finally:
                self.scheduler.remove_lock()
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self.settings.reconcile_interval
            self.reconcile()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + history.STEP_EVERY
            self._prune_history()

    def reconcile(self) -> None:
        ttl = max(1, int(self.settings.reconcile_interval * 0.8))
        if not self.conn.set(keys.RECONCILE_LOCK, self.scheduler.name, ex=ttl, nx=True):
            return  # another scheduler reconciled within this period
        report = schedule.reconcile(self.settings)
        if report.added or report.removed or report.updated:
            log.info(
                "reconcile: added %d, removed %d, updated %d, unchanged %d",
                len(report.added),
                len(report.removed),
                len(report.updated),
                report.unchanged,
            )
        self.conn.set(keys.SCHEDULER_RECONCILED, _now_iso(), ex=7 * 24 * 3600)
        outbox.sweep(self.settings, self.conn)
        # a killed worker leaves its poll run "running": close it once no poll could still be going
        health.close_abandoned(timedelta(seconds=self.settings.job_timeout + self.settings.lock_ttl))
        if outbox.configured(self.settings):
            self._claims_cursor = outbox.clean_claims(self.settings, self.conn, self._claims_cursor)

    def _prune_history(self) -> None:
        """One short step of poll-history pruning every ``history.STEP_EVERY`` s (see history.py): never a long pass."""
        pruned = history.prune(self.settings, self._history_cursor)
        self._history_cursor = pruned.cursor
        if pruned.by_age or pruned.by_count:
            log.debug("poll history: pruned %d by age, %d by count", pruned.by_age, pruned.by_count)


def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; a Redis or database outage is waited out, not fatal."""
    logs.setup(settings)
    Runner(settings).run()
