"""``mailq scheduler``: rq-scheduler's loop, plus reconcile, the outbox sweep and a liveness key.

Every ``scheduler_interval`` (1 s) one scheduler process (rq-scheduler's lock,
here with a token so a slow pass never deletes another's lock) moves due
entries: for a mailbox entry it does not push the entry itself but claims the
mailbox and enqueues a fresh poll job (or, in a pass with more due polls than
``MAILQ_POLL_GROUP_SIZE``, group jobs polling several in turn: polling.py), and
skips the push (still rescheduling) while a poll of that mailbox is queued or
running. No tick job runs at all, and the queue never holds more polls than
there are mailboxes. Two schedulers cannot double-enqueue: passes
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
from rq import Worker
from rq.exceptions import NoSuchJobError
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

    def enqueue_jobs(self):
        """Move every due entry: mailq's mailbox entries in bulk (``_submit_due``), any other as rq-scheduler does."""
        due = self.connection.zrangebyscore(self.scheduled_jobs_key, 0, int(time.time()), withscores=True)
        ours: list[tuple[float, int]] = []
        for raw, score in due:
            entry = raw.decode()
            mailbox_id = keys.mailbox_of_entry(entry)
            if mailbox_id is not None:
                ours.append((score, mailbox_id))
                continue
            try:  # not ours: rq-scheduler's usual behaviour
                super().enqueue_job(self.job_class.fetch(entry, connection=self.connection))
            except NoSuchJobError:
                self.connection.zrem(self.scheduled_jobs_key, entry)
        if ours:
            # due order; Redis returns equal scores in string order (mbx-21 before mbx-3), so ties go by id as a number
            self._submit_due([mailbox_id for _, mailbox_id in sorted(ours)])
        return due

    def _submit_due(self, mailbox_ids: list[int]) -> None:
        """Claim and enqueue polls of due mailboxes, in a few round trips for the whole pass.

        Templates are read in one pipeline, pushed mailboxes are asked about in
        one (only their safety poll is due, ``MAILQ_PUSH_SAFETY_INTERVAL``), and
        every entry moves one interval on in one, pushed or skipped. A queue with
        more due polls than ``MAILQ_POLL_GROUP_SIZE`` gets them as group jobs
        (``polling.poll_group``) spread over at least as many jobs as there are
        workers; otherwise one job per poll, as a small farm always has.
        """
        conn = self.connection
        templates = self.job_class.fetch_many([keys.schedule_entry(m) for m in mailbox_ids], connection=conn)
        pushed = push_status.skip_scheduled_polls(conn, mailbox_ids, self.settings.push_safety_interval)
        now = time.time()
        by_queue: dict[str, list[int]] = {}
        moves = conn.pipeline(transaction=False)
        for mailbox_id, template in zip(mailbox_ids, templates):
            if template is None:  # the entry outlived its template: rq-scheduler drops such entries too
                moves.zrem(self.scheduled_jobs_key, keys.schedule_entry(mailbox_id))
                continue
            schedule.defer(moves, mailbox_id, now + int(template.meta.get("interval") or self.settings.poll_interval))
            if mailbox_id in pushed:
                self.skipped += 1  # an idler pushes it: only the safety poll is due
            else:
                by_queue.setdefault(template.origin or EMAIL, []).append(mailbox_id)
        try:
            workers = Worker.count(connection=conn) if any(len(ids) > self.settings.poll_group_size for ids in by_queue.values()) else 0
            for queue_name, ids in by_queue.items():
                for group in groups(ids, self.settings.poll_group_size, workers):
                    submitted = len(claims.submit_group(self.settings, conn, group, queue_name))
                    self.pushed += submitted
                    self.skipped += len(group) - submitted
        finally:
            moves.execute()


def groups(mailbox_ids: list[int], size: int, workers: int) -> list[list[int]]:
    """One queue's due polls as jobs: one each up to ``size``; beyond, at least ``workers`` groups of at most ``size``."""
    n = len(mailbox_ids)
    if n <= size or size <= 1:
        return [[m] for m in mailbox_ids]
    jobs = min(n, max(-(-n // size), workers))
    return [mailbox_ids[i * n // jobs : (i + 1) * n // jobs] for i in range(jobs)]


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
