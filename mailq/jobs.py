"""The functions RQ runs: ``poll``, ``poll_group``, ``dispatch`` and ``noop`` (enqueued by the paths in keys.py).

Jobs carry ids only (a mailbox id, message ids): never hosts, user names or
secrets, which stay encrypted in the database. They read settings from the
environment the worker was started with and bind the database on first use;
a worker may run many jobs in one process (``SimpleWorker``, the default) or
fork one per job (``MAILQ_WORKER_FORK=1``), so each job closes its connection.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from rq import get_current_job

from . import config, db, delivery, polling
from .config import Settings
from .queues import EMAIL, connect


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


def _token(current) -> str:
    """The claim token of a poll: the RQ job's id, or a fresh one when called outside a worker."""
    return current.id if current is not None else f"inline-{uuid.uuid4().hex[:12]}"


@_closes_db
def poll(mailbox_id: int, force: bool = False) -> dict[str, Any]:
    """Poll one mailbox under its claim (``polling.poll_claimed``): a manual poll, a follow-up, a small farm's."""
    settings = _settings()
    return polling.poll_claimed(settings, connect(settings), mailbox_id, _token(get_current_job()), force=force)


@_closes_db
def poll_group(mailbox_ids: list[int]) -> dict[str, Any]:
    """Poll several due mailboxes in turn, each under its own claim and isolated (``polling.poll_group``)."""
    settings = _settings()
    current = get_current_job()
    queue_name = current.origin if current is not None else EMAIL
    return polling.poll_group(settings, connect(settings), [int(m) for m in mailbox_ids], _token(current), queue_name)


@_closes_db
def dispatch(message_ids: list[int]) -> dict[str, int]:
    """Hand one committed batch to the user's hook and/or webhook (the ``workflow`` queue).

    Raises when any message failed, so RQ retries the job; messages already
    handed over are marked and not handed over again.
    """
    return delivery.deliver(_settings(), list(message_ids), get_current_job())


def noop() -> None:
    """For smoke tests of a worker (``mailq`` enqueues nothing else on ``default``)."""
