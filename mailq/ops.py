"""The operations layer: every read model and action the CLI and the console share.

Neither the CLI nor the console touches Redis keys or rq internals directly;
they call these functions. Lists that can be huge (mailboxes, failed jobs) are
windowed with ``offset``/``limit`` so a console refresh stays cheap at 10,000
mailboxes and 100,000 failed jobs.

Redis failures surface as ``QueueError``, database failures as ``DatabaseError``;
``overview`` alone degrades instead (it fills ``redis_error``/``database_error``),
because the console must keep drawing when one of them is down.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import peewee as pw
import redis
from rq.job import Job, JobStatus
from rq.registry import (DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry,
                         StartedJobRegistry)
from rq.results import Result
from rq.worker import Worker

from . import db, locks, mailboxes, schedule
from .config import Settings
from .db import errors_as_mailq
from .errors import MailqError, NotFoundError, QueueError
from .models import Mailbox, Message, PollRun, utcnow
from .queues import QUEUE_NAMES, connect, errors_as_queue, poll_queue_name


@dataclass
class QueueStats:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    finished: int


@dataclass
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    state: str  # idle | busy | suspended | ...
    queues: list[str]
    current_job_id: str | None
    current_mailbox_id: int | None
    current_mailbox_name: str | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    stale: bool  # heartbeat older than the worker's TTL: probably dead
    successes: int
    failures: int


@dataclass
class FailedJob:
    id: str
    queue: str
    function: str
    mailbox_id: int | None
    mailbox_name: str | None
    error_line: str
    failed_at: datetime | None
    traceback: str | None = None  # filled by failed_job(), not by the list


@dataclass
class ScheduledPoll:
    job_id: str
    mailbox_id: int | None
    mailbox_name: str | None
    interval: int | None
    next_run_at: datetime | None


@dataclass
class ScheduleDiff:
    missing: list[int] = field(default_factory=list)  # enabled mailboxes without a recurring poll
    stale: list[str] = field(default_factory=list)  # recurring polls whose mailbox is gone or disabled (job ids)
    changed: list[int] = field(default_factory=list)  # interval or queue differs from the database


@dataclass
class ReconcileReport:
    added: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class MailboxRow:
    id: int
    name: str
    host: str
    state: str  # ok | failing | auth_error | paused
    last_poll_at: datetime | None
    last_success_at: datetime | None
    next_run_at: datetime | None
    new_today: int
    consecutive_failures: int
    last_error: str | None


@dataclass
class PollRunRow:
    id: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    new_count: int
    skipped_count: int
    error_class: str | None
    error_text: str | None


@dataclass
class Overview:
    states: dict[str, int]  # ok / failing / auth_error / paused -> count
    queues: list[QueueStats]
    workers_online: int
    workers_busy: int
    workers_stale: int
    failed_total: int
    ingested_last_hour: int
    ingest_per_minute: list[int]  # 60 values, oldest first
    scheduler_alive: bool
    scheduler_last_reconcile_at: datetime | None
    redis_error: str | None = None  # set when Redis is unreachable (the rest is then partial)
    database_error: str | None = None


_REGISTRIES = (StartedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry)
_DONE = {JobStatus.FINISHED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value, JobStatus.CANCELED.value}
STALE_BUSY_S = 120  # a busy worker's heartbeat is renewed every ~30 s while its job runs
STALE_IDLE_S = 480  # an idle worker heartbeats once per blocking dequeue (worker_ttl 420 s - 15)
SEARCH_SCAN_CAP = 20_000  # failed-job search looks at this many newest jobs at most


def _naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _from_epoch(score: float | None) -> datetime | None:
    return None if score is None else datetime.fromtimestamp(score, timezone.utc).replace(tzinfo=None)


def _names(mailbox_ids: set[int]) -> dict[int, str]:
    if not mailbox_ids:
        return {}
    with errors_as_mailq():
        return {m.id: m.name for m in Mailbox.select(Mailbox.id, Mailbox.name).where(Mailbox.id.in_(list(mailbox_ids)))}


def _mailbox_of(job: Job | None) -> int | None:
    """The mailbox a job is about (poll jobs and the recurring templates carry its id first)."""
    if job is None:
        return None
    try:
        if job.func_name == "mailq.jobs.poll" and job.args:
            return int(job.args[0])
    except Exception:  # unreadable job data: show it without a mailbox
        return None
    return None


# -- queues and workers -------------------------------------------------------------------------------------------

def queue_stats(settings: Settings) -> list[QueueStats]:
    """Counts per queue, in worker order, in one round trip (ZCARD: no registry cleanup on a read)."""
    conn = connect(settings)
    with errors_as_queue(settings):
        pipe = conn.pipeline(transaction=False)
        for name in QUEUE_NAMES:
            pipe.llen(f"rq:queue:{name}")
            for registry in _REGISTRIES:
                pipe.zcard(registry(name, connection=conn).key)
        values = pipe.execute()
    stats = []
    for i, name in enumerate(QUEUE_NAMES):
        queued, started, scheduled, deferred, failed, finished = values[i * 6:(i + 1) * 6]
        stats.append(QueueStats(name, queued, started, scheduled, deferred, failed, finished))
    return stats


def workers(settings: Settings) -> list[WorkerInfo]:
    """Registered RQ workers (any, not just mailq's), with the mailbox each one is polling."""
    conn = connect(settings)
    now = datetime.now(timezone.utc)
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
        age = (now - beat.astimezone(timezone.utc)).total_seconds() if beat else None
        mid = _mailbox_of(by_id.get(job_id)) if job_id else None
        result.append(WorkerInfo(
            name=w.name, hostname=w.hostname or "", pid=w.pid, state=state, queues=w.queue_names(),
            current_job_id=job_id, current_mailbox_id=mid, current_mailbox_name=names.get(mid) if mid else None,
            heartbeat_at=_naive(beat), heartbeat_age_s=age,
            stale=age is not None and age > (STALE_BUSY_S if state == "busy" else STALE_IDLE_S),
            successes=w.successful_job_count or 0, failures=w.failed_job_count or 0,
        ))
    result.sort(key=lambda w: w.name)
    return result


# -- failed jobs --------------------------------------------------------------------------------------------------

def _failed_registries(conn: redis.Redis) -> list[FailedJobRegistry]:
    return [FailedJobRegistry(name, connection=conn) for name in QUEUE_NAMES]


def _error_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _describe_failed(conn: redis.Redis, ids: list[tuple[str, str]], with_traceback: bool = False) -> list[FailedJob]:
    """FailedJob rows for (queue, job id) pairs: the hashes and latest results in two pipelined round trips."""
    jobs = Job.fetch_many([j for _, j in ids], connection=conn)
    pipe = conn.pipeline(transaction=False)
    for _, job_id in ids:
        pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
    latest = pipe.execute()
    names = _names({m for m in (_mailbox_of(j) for j in jobs) if m is not None})
    rows = []
    for (queue_name, job_id), job, result in zip(ids, jobs, latest):
        exc_text = None
        if result:
            try:
                exc_text = Result.restore(job_id, result[0][0].decode(), result[0][1], connection=conn).exc_string
            except Exception:
                exc_text = None
        if exc_text is None and job is not None:
            exc_text = job._exc_info or None
        function = "?"
        if job is not None:
            try:
                function = job.func_name or "?"
            except Exception:
                function = "(unreadable job data)"
        mid = _mailbox_of(job)
        rows.append(FailedJob(
            id=job_id, queue=queue_name, function=function, mailbox_id=mid, mailbox_name=names.get(mid),
            error_line=_error_line(exc_text) if job is not None else "job data expired",
            failed_at=_naive(job.ended_at) if job is not None else None,
            traceback=exc_text if with_traceback else None,
        ))
    return rows


def failed_jobs(settings: Settings, offset: int = 0, limit: int = 100,
                search: str | None = None) -> tuple[list[FailedJob], int]:
    """A page of failed jobs (newest first per queue, queues in worker order) and the total.

    Only the page's ids are read (ZRANGE windows) and only the page's jobs are
    fetched, so 100,000 failed jobs cost the same as 100. ``search`` filters on
    id, function, error and mailbox name over the newest ``SEARCH_SCAN_CAP`` jobs.
    """
    conn = connect(settings)
    with errors_as_queue(settings):
        registries = _failed_registries(conn)
        if search:
            return _search_failed(conn, registries, search.lower(), offset, limit)
        pipe = conn.pipeline(transaction=False)
        for registry in registries:
            pipe.zcard(registry.key)
        counts = pipe.execute()
        page: list[tuple[str, str]] = []
        skip, need = offset, limit
        for registry, n in zip(registries, counts):
            if need <= 0:
                break
            if skip >= n:
                skip -= n
                continue
            ids = conn.zrange(registry.key, skip, skip + need - 1, desc=True)
            page += [(registry.name, i.decode()) for i in ids]
            need -= len(ids)
            skip = 0
        return _describe_failed(conn, page), sum(counts)


def _search_failed(conn, registries, needle: str, offset: int, limit: int) -> tuple[list[FailedJob], int]:
    matches: list[FailedJob] = []
    scanned = 0
    for registry in registries:
        start = 0
        while scanned < SEARCH_SCAN_CAP:
            ids = conn.zrange(registry.key, start, start + 499, desc=True)
            if not ids:
                break
            start += len(ids)
            scanned += len(ids)
            for row in _describe_failed(conn, [(registry.name, i.decode()) for i in ids]):
                hay = " ".join(str(v) for v in (row.id, row.function, row.error_line, row.mailbox_name) if v).lower()
                if needle in hay:
                    matches.append(row)
    return matches[offset:offset + limit], len(matches)


def _locate_failed(conn: redis.Redis, job_ids: list[str]) -> dict[str, FailedJobRegistry]:
    """Which failed registry holds each id; NotFoundError naming the ones in none."""
    registries = _failed_registries(conn)
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        for registry in registries:
            pipe.zscore(registry.key, job_id)
    scores = pipe.execute()
    found, missing = {}, []
    for i, job_id in enumerate(job_ids):
        hits = [r for r, s in zip(registries, scores[i * len(registries):(i + 1) * len(registries)]) if s is not None]
        if hits:
            found[job_id] = hits[0]
        else:
            missing.append(job_id)
    if missing:
        raise NotFoundError(f"no failed job {', '.join(missing)}: see `mailq failed list`")
    return found


def failed_job(settings: Settings, job_id: str) -> FailedJob:
    """One failed job with its full traceback."""
    conn = connect(settings)
    with errors_as_queue(settings):
        registry = _locate_failed(conn, [job_id])[job_id]
        return _describe_failed(conn, [(registry.name, job_id)], with_traceback=True)[0]


def requeue_failed(settings: Settings, job_ids: list[str]) -> int:
    """Put failed jobs back on their queues (all named ids must be failed jobs, or nothing happens)."""
    conn = connect(settings)
    with errors_as_queue(settings):
        located = _locate_failed(conn, list(dict.fromkeys(job_ids)))
        done = 0
        for job_id, registry in located.items():
            try:
                registry.requeue(job_id)
                done += 1
            except Exception as exc:  # the hash expired under us: drop the dangling entry
                conn.zrem(registry.key, job_id)
                if not isinstance(exc, (redis.exceptions.RedisError,)) and "No such job" not in str(exc):
                    raise QueueError(f"could not requeue {job_id}: {exc}", orig=exc) from None
        return done


def requeue_all_failed(settings: Settings) -> int:
    conn = connect(settings)
    done = 0
    with errors_as_queue(settings):
        for registry in _failed_registries(conn):
            while True:
                ids = [i.decode() for i in conn.zrange(registry.key, 0, 499)]
                if not ids:
                    break
                for job_id in ids:
                    try:
                        registry.requeue(job_id)
                        done += 1
                    except Exception:
                        conn.zrem(registry.key, job_id)
    return done


def delete_failed(settings: Settings, job_ids: list[str]) -> int:
    """Delete failed jobs for good. A deleted dispatch job's messages are given up (the sweep leaves them)."""
    conn = connect(settings)
    with errors_as_queue(settings):
        located = _locate_failed(conn, list(dict.fromkeys(job_ids)))
        jobs = Job.fetch_many(list(located), connection=conn)
        for (job_id, registry), job in zip(located.items(), jobs):
            if job is None:
                conn.zrem(registry.key, job_id)
                continue
            try:
                if job.func_name == "mailq.jobs.dispatch" and job.args:
                    locks.abandon_message_claims(conn, [int(m) for m in job.args[0]])
            except Exception:
                pass
            job.delete()
        return len(located)


# -- mailboxes ----------------------------------------------------------------------------------------------------

def _new_since(mailbox_ids: list[int], since: datetime) -> dict[int, int]:
    if not mailbox_ids:
        return {}
    rows = (Message.select(Message.mailbox, pw.fn.COUNT(Message.id).alias("n"))
            .where(Message.mailbox.in_(mailbox_ids) & (Message.created_at >= since))
            .group_by(Message.mailbox).tuples())
    return {mid: n for mid, n in rows}


def _safe_next_runs(settings: Settings, ids: list[int]) -> dict[int, datetime]:
    try:
        return schedule.next_runs(connect(settings), ids)
    except (redis.exceptions.RedisError, MailqError):
        return {}  # Redis down: the rows still draw, without next runs


def mailbox_rows(settings: Settings, offset: int = 0, limit: int = 200, text: str | None = None,
                 state: str | None = None) -> tuple[list[MailboxRow], int]:
    """A page of mailboxes (by id) with health and next run, and the total matching."""
    with errors_as_mailq():
        query = Mailbox.select()
        if text:
            pattern = f"%{text}%"
            query = query.where((Mailbox.name ** pattern) | (Mailbox.host ** pattern) | (Mailbox.username ** pattern))
        if state == "paused":
            query = query.where(Mailbox.paused == True)  # noqa: E712
        elif state:
            query = query.where((Mailbox.state == state) & (Mailbox.paused == False))  # noqa: E712
        total = query.count()
        page = list(query.order_by(Mailbox.id).offset(offset).limit(limit))
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        new_today = _new_since([m.id for m in page], today)
    runs = _safe_next_runs(settings, [m.id for m in page])
    rows = [MailboxRow(m.id, m.name, m.host, m.display_state, m.last_poll_at, m.last_success_at, runs.get(m.id),
                       new_today.get(m.id, 0), m.consecutive_failures, m.last_error) for m in page]
    return rows, total


def mailbox_detail(settings: Settings, mailbox_id: int) -> tuple[dict, list[PollRunRow]]:
    """The mailbox's fields (no secret), its next run and claim, and its last 50 poll runs."""
    mailbox = mailboxes.get(mailbox_id)
    info = mailboxes.to_dict(mailbox, detail=True)
    runs = _safe_next_runs(settings, [mailbox.id])
    info["next_run_at"] = runs[mailbox.id].isoformat() + "Z" if mailbox.id in runs else None
    try:
        info["poll_job"] = locks.holder(connect(settings), mailbox.id)
    except redis.exceptions.RedisError:
        info["poll_job"] = None
    with errors_as_mailq():
        rows = list(PollRun.select().where(PollRun.mailbox == mailbox.id)
                    .order_by(PollRun.started_at.desc(), PollRun.id.desc()).limit(50))
    return info, [PollRunRow(r.id, r.started_at, r.finished_at, r.outcome, r.new_count, r.skipped_count,
                             r.error_class, r.error_text) for r in rows]


# -- schedules ----------------------------------------------------------------------------------------------------

def scheduled_polls(settings: Settings, offset: int = 0, limit: int = 500) -> tuple[list[ScheduledPoll], int]:
    """Recurring polls by next run, a window at a time."""
    conn = connect(settings)
    with errors_as_queue(settings):
        entries = schedule.entries(conn, offset, offset + limit - 1)
        total = schedule.count(conn)
    names = _names({e.mailbox_id for e in entries})
    return [ScheduledPoll(schedule.job_id(e.mailbox_id), e.mailbox_id, names.get(e.mailbox_id), e.interval,
                          _from_epoch(e.next_run)) for e in entries], total


def schedule_diff(settings: Settings) -> ScheduleDiff:
    plan, _, _ = schedule.plan(settings)
    return ScheduleDiff(plan.missing, [schedule.job_id(m) for m in plan.stale], plan.changed)


def resync(settings: Settings) -> ReconcileReport:
    """Reconcile the schedule with the database now (what the scheduler does every minute)."""
    r = schedule.reconcile(settings)
    return ReconcileReport(r.added, r.removed, r.updated, r.unchanged)


# -- actions ------------------------------------------------------------------------------------------------------

def poll_now(settings: Settings, mailbox_ids: list[int], wait: bool = False, timeout: float = 300) -> list[str]:
    """Enqueue a poll of each mailbox now (reusing one already queued or running); job ids in order.

    An operator's poll ignores a backoff. With ``wait`` it blocks until every
    poll has ended; ``QueueError`` after ``timeout`` seconds.
    """
    from .jobs import submit_poll

    targets = [mailboxes.get(m) for m in mailbox_ids]
    conn = connect(settings)
    with errors_as_queue(settings):
        ids = [submit_poll(settings, m.id, poll_queue_name(m.priority), manual=True, conn=conn)[0] for m in targets]
        if wait:
            wait_for_jobs(settings, ids, timeout)
    return ids


def wait_for_jobs(settings: Settings, job_ids: list[str], timeout: float) -> None:
    """Block until each job finished, failed, stopped or vanished (a finished scheduled poll keeps no hash)."""
    conn = connect(settings)
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(job_ids))
    delay = 0.05
    while pending:
        pipe = conn.pipeline(transaction=False)
        for job_id in pending:
            pipe.hget(Job.key_for(job_id), "status")
        statuses = pipe.execute()
        pending = [j for j, s in zip(pending, statuses) if s is not None and s.decode() not in _DONE]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise QueueError(f"timed out after {timeout:g}s waiting for {len(pending)} poll(s): "
                             "are workers running? (`mailq status`)")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def pause(settings: Settings, mailbox_id: int) -> None:
    """Park the mailbox in the database, then drop its schedule and any queued poll.

    The database change stands even if Redis is down (``QueueError`` is raised
    after it); the scheduler's next reconcile then drops the schedule.
    """
    mailbox = mailboxes.set_paused(mailboxes.get(mailbox_id), True)
    schedule.forget(settings, mailbox.id)


def resume(settings: Settings, mailbox_id: int) -> None:
    """Unpark (also clears auth_error and backoff) and schedule it again; ``QueueError`` as for ``pause``."""
    mailbox = mailboxes.set_paused(mailboxes.get(mailbox_id), False)
    schedule.ensure(settings, mailbox)


def sync_mailbox(settings: Settings, mailbox_id: int) -> str:
    """Bring one mailbox's schedule in line with its row (after add/update); see ``schedule.ensure``."""
    return schedule.ensure(settings, mailboxes.get(mailbox_id))


def test_login(settings: Settings, mailbox_id: int):
    """Connect and log in once; returns ``imap.Probe`` (raises the ImapError subclass that explains a failure)."""
    from . import imap

    return imap.probe(settings, mailboxes.get(mailbox_id))


# -- overview and status ------------------------------------------------------------------------------------------

def _state_counts() -> dict[str, int]:
    states = {"ok": 0, "failing": 0, "auth_error": 0, "paused": 0}
    with errors_as_mailq():
        for paused, state, n in (Mailbox.select(Mailbox.paused, Mailbox.state, pw.fn.COUNT(Mailbox.id))
                                 .group_by(Mailbox.paused, Mailbox.state).tuples()):
            key = "paused" if paused else state
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
        rows = (Message.select(bucket.alias("m"), pw.fn.COUNT(Message.id))
                .where(Message.created_at >= start).group_by(bucket).tuples())
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
    from .scheduler import liveness

    states: dict[str, int] = {"ok": 0, "failing": 0, "auth_error": 0, "paused": 0}
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
            alive, reconciled = liveness(connect(settings))
    except (MailqError, redis.exceptions.RedisError) as exc:
        if isinstance(exc, QueueError) or isinstance(exc, redis.exceptions.RedisError):
            redis_error = str(exc)
        else:
            database_error = database_error or str(exc)
    return Overview(
        states=states, queues=queues,
        workers_online=sum(1 for w in worker_list if not w.stale),
        workers_busy=sum(1 for w in worker_list if w.state == "busy" and not w.stale),
        workers_stale=sum(1 for w in worker_list if w.stale),
        failed_total=sum(q.failed for q in queues), ingested_last_hour=sum(per_minute),
        ingest_per_minute=per_minute, scheduler_alive=alive is not None, scheduler_last_reconcile_at=reconciled,
        redis_error=redis_error, database_error=database_error,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def status(settings: Settings) -> dict[str, Any]:
    """The ``mailq status --json`` shape: keys ``mailboxes``, ``queues``, ``workers``, ``failed`` (+ ``scheduler``)."""
    from .scheduler import liveness

    states = _state_counts()
    queues = queue_stats(settings)
    worker_list = workers(settings)
    with errors_as_queue(settings):
        alive, reconciled = liveness(connect(settings))
    return {
        "mailboxes": {**states, "total": sum(states.values())},
        "queues": [asdict(q) for q in queues],
        "workers": [{**asdict(w), "heartbeat_at": _iso(w.heartbeat_at)} for w in worker_list],
        "failed": sum(q.failed for q in queues),
        "scheduler": {"alive": alive is not None, "name": alive.get("name") if alive else None,
                      "last_reconcile_at": _iso(reconciled)},
    }
