"""``mailq worker``: a standard RQ worker on mailq's queues, in priority order.

Nothing here is special on purpose: ``rq worker --with-scheduler email-high
email workflow default`` with the same environment does the same job. The
worker's built-in scheduler (``with_scheduler``) is what turns ``Retry`` of
failed dispatches into new attempts; without any worker running it, retries
wait in the ScheduledJobRegistry. SIGTERM is a warm shutdown: the current poll
finishes (give it longer than honcho's 5 s in production, see docs/farm.md).
"""

from __future__ import annotations

import logging
import signal
import time

from rq import SimpleWorker, Worker
from rq.worker import WorkerStatus

# jobs is imported for its side effect: what every job needs (IMAP client, MIME parsing, storage) loads
# once, in the worker (and a forked work-horse, with MAILQ_WORKER_FORK=1, inherits it) instead of on every job.
from . import compat, db, jobs, logs  # noqa: F401
from .config import Settings
from .errors import QueueError
from .queues import QUEUE_NAMES, all_queues, connect, errors_as_queue, register

log = logging.getLogger("mailq.worker")

HEARTBEAT_EVERY = 5.0
"""Seconds within which a further plain worker heartbeat is skipped (RQ sends three per job, 3 round trips each)."""


class _FewerRoundTrips:
    """RQ's worker minus its redundant Redis writes: 10 of the ~26 round trips RQ makes per job.

    RQ 3 refreshes the worker's key three times per job (before and after the
    dequeue, after the job: an HSET and two EXPIREs each) and writes ``idle``
    twice in a row. A heartbeat within ``HEARTBEAT_EVERY`` of the last one, and
    a state the worker is already in, are skipped; the key's TTL (worker_ttl +
    60 s) stays far ahead, ``rq info`` and dashboards read the same fields, at
    most 5 s old. Pipelined heartbeats (job start, long jobs) are untouched.
    """

    _beat_at = float("-inf")

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is None and timeout is None and time.monotonic() - self._beat_at < HEARTBEAT_EVERY:
            return
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self._beat_at = time.monotonic()

    def set_state(self, state, pipeline=None):
        if pipeline is None and state == WorkerStatus.IDLE and getattr(self, "_state", None) == state:
            return
        super().set_state(state, pipeline)


class MailqSimpleWorker(_FewerRoundTrips, SimpleWorker):
    """RQ's SimpleWorker (jobs run in the worker process) with fewer Redis round trips."""


class MailqForkWorker(_FewerRoundTrips, Worker):
    """RQ's forking Worker with fewer Redis round trips."""


class _PerJobLines(logging.Filter):
    """Drops RQ's four INFO lines per job (dequeued, completed, "Job OK", result discarded) unless MAILQ_LOG_LEVEL is DEBUG.

    At 10,000 mailboxes a minute they are 58 million lines a day and a share of
    each idle poll's CPU; failures still log at WARNING/ERROR, and ``rq info``,
    the console and ``mailq failed`` show what ran.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        return not record.msg.startswith(("Worker %s: %s: %s", "Successfully completed", "Worker %s: job %s result"))


def run(settings: Settings, *, burst: bool = False, name: str | None = None, fork: bool | None = None) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``); True if any job ran.

    By default jobs run in the worker process (RQ's ``SimpleWorker``): a fork per
    job cost ~30 ms of CPU, more than an idle poll itself, and most polls are
    idle. Isolation stays adequate: jobs are mailq's own code, bounded by size
    limits, socket timeouts and RQ's job timeout (SIGALRM), and a job that dies
    takes only its claim with it. ``fork=True`` (``MAILQ_WORKER_FORK=1``) gives
    RQ's forking worker back.
    """
    logs.setup(settings)
    fork = settings.worker_fork if fork is None else fork
    worker_class = MailqForkWorker if fork else MailqSimpleWorker
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("rq.worker").addFilter(_PerJobLines())
    conn = connect(settings, check=True, blocking=True)
    db.close()  # each work-horse binds its own connection after fork; the parent never uses one
    worked, wait, first = False, 1.0, True
    while True:
        try:
            with errors_as_queue(settings):
                register(conn)
                worker = worker_class(all_queues(settings, conn), connection=conn, name=name)
                worked = worker.work(burst=burst, with_scheduler=True, logging_level=logs.rq_level(settings)) or worked
            if burst or compat.worker_asked_to_stop(worker):
                return worked  # finished, or asked to stop (an idle worker's stop sets only the date)
        except QueueError:
            if first:
                raise  # at start, a Redis that isn't there is the operator's error to fix
        first = False
        # RQ's loop quits on a Redis error (a restart, a failover). Under honcho one exiting process stops
        # the whole farm, so wait for Redis and carry on as a fresh worker instead.
        log.warning("worker stopped unexpectedly (Redis gone?); reconnecting in %.0fs", wait)
        for sig in (signal.SIGTERM, signal.SIGINT):  # no job runs now: a stop request may simply end us
            signal.signal(sig, signal.SIG_DFL)
        time.sleep(wait)
        wait = min(wait * 2, 30.0)


def command_line() -> str:
    """The equivalent plain ``rq`` command, for docs and ``--help``."""
    return "rq worker --with-scheduler --worker-class rq.SimpleWorker " + " ".join(QUEUE_NAMES)
