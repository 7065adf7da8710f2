"""Queues, workers and the recurring polls as operators see them."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import Queue
from rq.job import Job
from rq.worker import Worker

from .. import keys, schedule
from ..config import Settings
from ..queues import QUEUE_NAMES, connect, errors_as_queue
from .common import (
    _REGISTRIES,
    STALE_BUSY_S,
    STALE_IDLE_S,
    _from_epoch,
    _mailbox_of,
    _naive,
    _names,
)
from .types import QueueStats, ReconcileReport, ScheduleDiff, ScheduledPoll, WorkerInfo


def queue_stats(settings: Settings) -> list[QueueStats]:
    """Counts per queue, in worker order, in one round trip (ZCARD: no registry cleanup on a read)."""
    conn = connect(settings)
    with errors_as_queue(settings):
        pipe = conn.pipeline(transaction=False)
        for name in QUEUE_NAMES:
            pipe.llen(Queue.redis_queue_namespace_prefix + name)
            for registry in _REGISTRIES:
                pipe.zcard(registry(name, connection=conn).key)
        values = pipe.execute()
    stats = []
    for i, name in enumerate(QUEUE_NAMES):
        queued, started, scheduled, deferred, failed, finished = values[i * 6 : (i + 1) * 6]
        stats.append(QueueStats(name, queued, started, scheduled, deferred, failed, finished))
    return stats


def workers(settings: Settings) -> list[WorkerInfo]:
    """Registered RQ workers (any, not just mailq's), with the mailbox each one is polling."""
    conn = connect(settings)
    now = datetime.now(UTC)
    with errors_as_queue(settings):
        found = Worker.all(connection=conn)
        current_ids = [w.get_current_job_id() for w in found]
        jobs = Job.fetch_many([j for j in current_ids if j], connection=conn)
    by_id = {j.id: j for j in jobs if j is not None}
    mailbox_ids = {m for m in (_mailbox_of(by_id.get(j)) for j in current_ids if j) if m is not None}
    names = _names(mailbox_ids)
    result = []
    for w, job_id in zip(found, current_ids):
        state = str(getattr(w.get_state(), "value", w.get_state()))
        beat = w.last_heartbeat
        age = (now - beat.astimezone(UTC)).total_seconds() if beat else None
        mid = _mailbox_of(by_id.get(job_id)) if job_id else None
        result.append(
            WorkerInfo(
                name=w.name,
                hostname=w.hostname or "",
                pid=w.pid,
                state=state,
                queues=w.queue_names(),
                current_job_id=job_id,
                current_mailbox_id=mid,
                current_mailbox_name=names.get(mid) if mid else None,
                heartbeat_at=_naive(beat),
                heartbeat_age_s=age,
                stale=age is not None and age > (STALE_BUSY_S if state == "busy" else STALE_IDLE_S),
                successes=w.successful_job_count or 0,
                failures=w.failed_job_count or 0,
            )
        )
    result.sort(key=lambda w: w.name)
    return result


def scheduled_polls(settings: Settings, offset: int = 0, limit: int = 500) -> tuple[list[ScheduledPoll], int]:
    """Recurring polls by next run, a window at a time."""
    conn = connect(settings)
    with errors_as_queue(settings):
        entries = schedule.entries(conn, offset, offset + limit - 1)
        total = schedule.count(conn)
    names = _names({e.mailbox_id for e in entries})
    return [
        ScheduledPoll(keys.schedule_entry(e.mailbox_id), e.mailbox_id, names.get(e.mailbox_id), e.interval, _from_epoch(e.next_run))
        for e in entries
    ], total


def schedule_diff(settings: Settings) -> ScheduleDiff:
    plan, _, _ = schedule.plan(settings)
    return ScheduleDiff(plan.missing, [keys.schedule_entry(m) for m in plan.stale], plan.changed)


def resync(settings: Settings) -> ReconcileReport:
    """Reconcile the schedule with the database now (what the scheduler does every minute)."""
    r = schedule.reconcile(settings)
    return ReconcileReport(r.added, r.removed, r.updated, r.unchanged)
