"""The functions RQ runs, and the one way polls get enqueued.

Jobs carry ids only (a mailbox id, message ids): never hosts, user names or
secrets, which stay encrypted in the database. Each job binds the database in
its own process (RQ forks a work-horse per job) and reads settings from the
environment the worker was started with.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job, JobStatus

from . import config, db, locks, reads, renewal, schedule
from .config import Settings
from .errors import NotFoundError
from .queues import connect, queue

log = logging.getLogger("mailq.jobs")

POLL_FAILURE_TTL = 7 * 24 * 3600
"""A crashed poll stays in the failed registry a week: a bug hitting every mailbox every minute must not fill Redis."""
MANUAL_RESULT_TTL = 3600
"""Results of polls an operator asked for are kept an hour, so ``poll --wait`` (and the console) can read them."""
_DEAD = {JobStatus.FAILED, JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.CANCELED}


def _settings() -> Settings:
    settings = config.get()
    db.bind(settings.database_url)
    return settings


def _closes_db(job):
    """A non-forking worker runs the next job in this same process: it reuses the connection when it
    still works (#14: no connect per poll) and closes it after a failed job, which may have broken it."""
    import functools

    @functools.wraps(job)
    def run(*args, **kwargs):
        db.revive()
        try:
            return job(*args, **kwargs)
        except BaseException:
            db.close()
            raise

    return run


def queued_ttl(settings: Settings) -> int:
    """How long a poll may wait in the queue (its claim lives as long): past that a fresh one replaces it."""
    return max(settings.job_timeout, 60)


CLAIM_GRACE_S = 10
"""A claim no running poll has adopted yet is trusted this long before its job is looked for in its queue.
Wrongly judging it dead costs one redundant job, never an overlap: the poll that fails to adopt its claim skips."""


def _claim_is_dead(settings: Settings, conn: redis.Redis, mailbox_id: int, token: str) -> bool:
    """A claim whose job crashed, finished without releasing, vanished (flushed, expired), or was lost
    in transit: taken off its queue by a worker that died before the poll adopted the claim.

    A running poll adopts the claim with the short ``lock_ttl`` and renews it, so
    a claim with a longer TTL belongs to a job that should be waiting in its queue;
    if it is not there after a grace period, nobody will ever run it.
    """
    status, origin = conn.hmget(Job.key_for(token), "status", "origin")
    if status is None or status.decode() in _DEAD:
        return True
    remaining_ms = conn.pttl(locks.key(mailbox_id))
    if remaining_ms <= settings.lock_ttl * 1000:
        return False  # adopted by a running poll (or about to expire by itself)
    age_s = queued_ttl(settings) - remaining_ms / 1000
    if age_s < CLAIM_GRACE_S or origin is None:
        return False
    return conn.lpos(queue(settings, origin.decode(), conn).key, token) is None


def submit_poll(
    settings: Settings, mailbox_id: int, queue_name: str, *, manual: bool = False, conn: redis.Redis | None = None
) -> tuple[str, bool]:
    """Enqueue a poll unless one is already queued or running; returns (job id, whether it is new).

    The claim is taken before the push, so two schedulers (or a scheduler and
    an operator) can never put two polls of one mailbox on the queue.
    """
    conn = conn or connect(settings)
    token = f"poll-{mailbox_id}-{uuid.uuid4().hex[:12]}"
    ttl = queued_ttl(settings)
    if not locks.claim(conn, mailbox_id, token, ttl):
        current = locks.holder(conn, mailbox_id)
        if current is not None and not _claim_is_dead(settings, conn, mailbox_id, current):
            return current, False
        taken = locks.steal(conn, mailbox_id, current, token, ttl) if current is not None else locks.claim(conn, mailbox_id, token, ttl)
        if not taken:  # lost a race to another submitter: theirs counts
            return locks.holder(conn, mailbox_id) or token, False
    try:
        queue(settings, queue_name, conn).enqueue_call(
            POLL,
            args=(mailbox_id,),
            kwargs={"force": True} if manual else None,
            job_id=token,
            timeout=settings.job_timeout,
            ttl=ttl,
            result_ttl=MANUAL_RESULT_TTL if manual else 0,
            failure_ttl=POLL_FAILURE_TTL,
            description=f"poll mailbox {mailbox_id}",
        )
    except BaseException:
        locks.release(conn, mailbox_id, token)
        raise
    return token, True


def cancel_queued_poll(conn: redis.Redis, mailbox_id: int) -> str | None:
    """Delete the mailbox's poll if it is still waiting in a queue; a running poll is left alone."""
    current = locks.holder(conn, mailbox_id)
    if current is None:
        return None
    job = Job.fetch_many([current], connection=conn)[0]
    if job is None or job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        if job is not None:
            job.delete(remove_from_queue=True)
        locks.release(conn, mailbox_id, current)
        return current
    return None


POLL = "mailq.jobs.poll"
DISPATCH = "mailq.jobs.dispatch"


@_closes_db
def poll(mailbox_id: int, force: bool = False) -> dict[str, Any]:
    """Poll one mailbox under its claim; the job RQ runs for every poll.

    Skips (without logging in) when another poll holds the mailbox. Afterwards
    it moves the recurring entry: no earlier than one interval after this start,
    not before a backoff ends, and gone after an authentication failure. A poll
    that stopped at its budget with more mail waiting enqueues the next one at once.
    """
    settings = _settings()
    conn = connect(settings)
    current = get_current_job()
    token = current.id if current is not None else f"inline-{uuid.uuid4().hex[:12]}"
    if not locks.renew(conn, mailbox_id, token, settings.lock_ttl):
        return {"mailbox_id": mailbox_id, "outcome": "skipped", "reason": "another poll of this mailbox is running"}
    started = time.time()
    try:
        with renewal.Renewer(conn, mailbox_id, token, settings.lock_ttl) as renewer:  # #14: no thread per poll
            result = _run_poll(settings, conn, mailbox_id, force, renewer, started)
    finally:
        try:
            locks.release(conn, mailbox_id, token)
        except redis.exceptions.RedisError:
            log.warning("mailbox %s: could not release its claim; it expires in %ss", mailbox_id, settings.lock_ttl)
    if result.get("more_pending"):
        from .models import Mailbox
        from .queues import poll_queue_name

        mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
        if mailbox is not None and mailbox.enabled:
            submit_poll(settings, mailbox_id, poll_queue_name(mailbox.priority), conn=conn)
    return result


def _run_poll(
    settings: Settings, conn: redis.Redis, mailbox_id: int, force: bool, renewer: renewal.Renewer, started: float
) -> dict[str, Any]:
    from . import dispatch, retry_slots
    from .models import Mailbox
    from .poll import poll_mailbox

    mailbox = reads.mailbox(mailbox_id)  # #14: SQL built once per process
    if mailbox is None:
        return {"mailbox_id": mailbox_id, "outcome": "skipped", "reason": "mailbox no longer exists"}
    schedule.defer(conn, mailbox_id, started + mailbox.interval)
    on_batch = dispatch.batch_enqueuer(settings, conn) if dispatch.configured(settings) else None
    try:
        with retry_slots.slot(settings, conn, mailbox) as allowed:
            if not allowed:
                return {"mailbox_id": mailbox_id, "outcome": "skipped", "reason": retry_slots.BUSY}
            result = poll_mailbox(
                settings, mailbox_id, on_batch=on_batch, heartbeat=renewer.check, force=force, mailbox=mailbox
            )  # #14: no re-read
    except locks.LockLost as exc:
        return {"mailbox_id": mailbox_id, "outcome": "skipped", "reason": str(exc)}
    except NotFoundError as exc:
        return {"mailbox_id": mailbox_id, "outcome": "skipped", "reason": str(exc)}
    if result.outcome == "auth_error":
        schedule.remove(conn, mailbox_id)  # parked: no logins until credentials change or an operator resumes
    elif result.outcome == "error":
        mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
        if mailbox is not None and mailbox.next_attempt_at is not None:
            schedule.defer(conn, mailbox_id, mailbox.next_attempt_at.replace(tzinfo=UTC).timestamp())
    return result.as_dict()


@_closes_db
def dispatch(message_ids: list[int]) -> dict[str, int]:
    """Hand one committed batch to the user's hook and/or webhook (the ``workflow`` queue).

    Raises when any message failed, so RQ retries the job; messages already
    handed over are marked and not handed over again.
    """
    from . import dispatch as downstream

    settings = _settings()
    return downstream.deliver(settings, list(message_ids), get_current_job())


def noop() -> None:
    """For smoke tests of a worker (``mailq`` enqueues nothing else on ``default``)."""
