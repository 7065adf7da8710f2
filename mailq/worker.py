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

# jobs is imported for its side effect: what every job needs (IMAP client, MIME parsing, storage) loads
# once, in the worker (and a forked work-horse, with MAILQ_WORKER_FORK=1, inherits it) instead of on every job.
from . import compat, db, jobs, logs  # noqa: F401
from .config import Settings
from .errors import QueueError
from .queues import QUEUE_NAMES, all_queues, connect, errors_as_queue, register

log = logging.getLogger("mailq.worker")


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
    worker_class = Worker if fork else SimpleWorker
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
