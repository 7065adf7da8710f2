"""The functions RQ runs: ``poll``, ``dispatch`` and ``noop`` (enqueued by the paths in keys.py).

Jobs carry ids only (a mailbox id, message ids): never hosts, user names or
secrets, which stay encrypted in the database. They read settings from the
environment the worker was started with and bind the database on first use;
a worker may run many jobs in one process (``SimpleWorker``, the default) or
fork one per job (``MAILQ_WORKER_FORK=1``), so each job closes its connection.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

import redis
from rq import get_current_job

from . import claims, config, db, delivery, metrics, outbox, reads, renewal, retry_slots, schedule
from .config import Settings
from .db import errors_as_mailq
from .errors import LockLost, NotFoundError
from .models import Mailbox
from .poll import poll_mailbox
from .queues import connect
from .states import Outcome

log = logging.getLogger("mailq.jobs")


def _settings() -> Settings:
    settings = config.get()
    db.bind(settings.database_url)
    return settings


def _closes_db(job):
    """A non-forking worker runs the next job in this same process: it reuses the database connection
    while it still works (no connect per poll) and closes it after a failed job, which may have broken it."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        db.revive()
        try:
            return job(*args, **kwargs)
        except BaseException:
            db.close()
            raise

    return run


def _skipped(mailbox_id: int, reason: str) -> dict[str, Any]:
    return {"mailbox_id": mailbox_id, "outcome": Outcome.SKIPPED, "reason": reason}


def _still_enabled(mailbox_id: int) -> bool:
    """Read again after the poll: an operator may have paused (or removed) the mailbox meanwhile."""
    with errors_as_mailq():
        return Mailbox.select().where((Mailbox.id == mailbox_id) & Mailbox.enabled_clause()).exists()


@_closes_db
def poll(mailbox_id: int, force: bool = False) -> dict[str, Any]:
    """Poll one mailbox under its claim; the job RQ runs for every poll.

    Skips (without logging in) when another poll holds the mailbox, and (a failing
    mailbox) when no failing-poll slot is free. As it starts, the recurring entry
    moves to one interval later (so the schedule cannot fire again while this
    poll's clock runs); afterwards ``schedule.after_poll`` moves it from the
    result, and a poll that stopped at its budget with more mail waiting enqueues
    the next one at once.
    """
    settings = _settings()
    conn = connect(settings)
    current = get_current_job()
    token = current.id if current is not None else f"inline-{uuid.uuid4().hex[:12]}"
    if not claims.adopt(conn, mailbox_id, token, settings.lock_ttl):
        return _skipped(mailbox_id, "another poll of this mailbox is running")
    started = time.time()
    try:
        with renewal.Renewer(conn, mailbox_id, token, settings.lock_ttl) as renewer:
            mailbox = reads.mailbox(mailbox_id)  # the SQL is built once per process
            if mailbox is None:
                return _skipped(mailbox_id, "mailbox no longer exists")
            schedule.defer(conn, mailbox_id, started + mailbox.interval)  # before any login
            with retry_slots.slot(settings, conn, mailbox) as allowed:
                if not allowed:
                    return _skipped(mailbox_id, retry_slots.BUSY)
                counter = metrics.IngestCounter(outbox.batch_enqueuer(settings, conn))
                result = poll_mailbox(
                    settings,
                    mailbox_id,
                    on_batch=counter,
                    heartbeat=renewer.check,
                    force=force,
                    mailbox=mailbox,
                )
            metrics.record_poll(conn, result.outcome, result.duration_s, counter.stored, counter.bytes, result.skipped)
            schedule.after_poll(conn, result, started)
    except LockLost as exc:
        return _skipped(mailbox_id, str(exc))
    except NotFoundError:
        return _skipped(mailbox_id, "mailbox no longer exists")
    finally:
        try:
            claims.release(conn, mailbox_id, token)
        except redis.exceptions.RedisError:
            log.warning("mailbox %s: could not release its claim; it expires in %ss", mailbox_id, settings.lock_ttl)
    if result.more_pending and _still_enabled(mailbox_id):
        claims.submit_poll(settings, mailbox_id, result.queue, conn=conn)
    return result.as_dict()


@_closes_db
def dispatch(message_ids: list[int]) -> dict[str, int]:
    """Hand one committed batch to the user's hook and/or webhook (the ``workflow`` queue).

    Raises when any message failed, so RQ retries the job; messages already
    handed over are marked and not handed over again.
    """
    return delivery.deliver(_settings(), list(message_ids), get_current_job())


def noop() -> None:
    """For smoke tests of a worker (``mailq`` enqueues nothing else on ``default``)."""
