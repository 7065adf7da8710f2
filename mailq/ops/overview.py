"""The overview (console) and ``mailq status``: everything at a glance, degrading when a service is down."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
import redis

from .. import db, schedule
from ..config import Settings
from ..db import errors_as_mailq
from ..errors import MailqError, QueueError
from ..history import summary
from ..models import Mailbox, Message, utcnow
from ..queues import connect, errors_as_queue
from ..states import DISPLAY_STATES, PAUSED
from .common import _naive
from .farm import queue_stats, workers
from .types import Overview, QueueStats, WorkerInfo


def _state_counts() -> dict[str, int]:
    states = dict.fromkeys(DISPLAY_STATES, 0)
    with errors_as_mailq():
        for paused, state, n in (
            Mailbox.select(Mailbox.paused, Mailbox.state, pw.fn.COUNT(Mailbox.id)).group_by(Mailbox.paused, Mailbox.state).tuples()
        ):
            key = PAUSED if paused else state
            states[key] = states.get(key, 0) + n
    return states


def _ingest_per_minute(now: datetime) -> list[int]:
    """New rows per minute over the last hour, oldest first (grouped in SQL: cheap at 100,000 rows/hour)."""
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    if db.is_postgres():
        bucket = pw.fn.date_trunc("minute", Message.created_at)
    else:
        bucket = pw.fn.strftime("%Y-%m-%d %H:%M", Message.created_at)
    with errors_as_mailq():
        rows = Message.select(bucket.alias("m"), pw.fn.COUNT(Message.id)).where(Message.created_at >= start).group_by(bucket).tuples()
        counts = [0] * 60
        for minute, n in rows:
            if isinstance(minute, str):
                minute = datetime.strptime(minute, "%Y-%m-%d %H:%M")
            index = int((_naive(minute) - start).total_seconds() // 60)
            if 0 <= index < 60:
                counts[index] += n
    return counts


def overview(settings: Settings) -> Overview:
    """The console's dashboard; never raises for Redis or the database being down (see the error fields)."""
    states: dict[str, int] = dict.fromkeys(DISPLAY_STATES, 0)
    per_minute = [0] * 60
    database_error = redis_error = None
    try:
        states = _state_counts()
        per_minute = _ingest_per_minute(utcnow())
    except MailqError as exc:
        database_error = str(exc)
    queues: list[QueueStats] = []
    worker_list: list[WorkerInfo] = []
    alive, reconciled = None, None
    try:
        queues = queue_stats(settings)
        worker_list = workers(settings)
        with errors_as_queue(settings):
            alive, reconciled = schedule.liveness(connect(settings))
    except (MailqError, redis.exceptions.RedisError) as exc:
        if isinstance(exc, (QueueError, redis.exceptions.RedisError)):
            redis_error = str(exc)
        else:
            database_error = database_error or str(exc)
    return Overview(
        states=states,
        queues=queues,
        workers_online=sum(1 for w in worker_list if not w.stale),
        workers_busy=sum(1 for w in worker_list if w.state == "busy" and not w.stale),
        workers_stale=sum(1 for w in worker_list if w.stale),
        failed_total=sum(q.failed for q in queues),
        ingested_last_hour=sum(per_minute),
        ingest_per_minute=per_minute,
        scheduler_alive=alive is not None,
        scheduler_last_reconcile_at=reconciled,
        redis_error=redis_error,
        database_error=database_error,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def status(settings: Settings) -> dict[str, Any]:
    """The ``mailq status --json`` shape: keys ``mailboxes``, ``queues``, ``workers``, ``failed`` (+ ``scheduler``)."""
    states = _state_counts()
    polls = summary(settings, utcnow() - timedelta(hours=1))
    queues = queue_stats(settings)
    worker_list = workers(settings)
    with errors_as_queue(settings):
        alive, reconciled = schedule.liveness(connect(settings))
    return {
        "mailboxes": {**states, "total": sum(states.values())},
        "queues": [asdict(q) for q in queues],
        "workers": [{**asdict(w), "heartbeat_at": _iso(w.heartbeat_at)} for w in worker_list],
        "failed": sum(q.failed for q in queues),
        "poll_history": polls,
        "scheduler": {"alive": alive is not None, "name": alive.get("name") if alive else None, "last_reconcile_at": _iso(reconciled)},
    }
