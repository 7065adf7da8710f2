"""Failed jobs: a windowed list, detail with traceback, requeue and delete (RQ's failed registries)."""

from __future__ import annotations

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.results import Result

from .. import compat, keys, outbox
from ..config import Settings
from ..errors import NotFoundError, QueueError
from ..queues import QUEUE_NAMES, connect, errors_as_queue
from .common import SEARCH_SCAN_CAP, _mailbox_of, _naive, _names
from .types import FailedJob


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
            exc_text = compat.job_exc_text(job)
        function = "?"
        if job is not None:
            try:
                function = job.func_name or "?"
            except Exception:
                function = "(unreadable job data)"
        mid = _mailbox_of(job)
        rows.append(
            FailedJob(
                id=job_id,
                queue=queue_name,
                function=function,
                mailbox_id=mid,
                mailbox_name=names.get(mid),
                error_line=_error_line(exc_text) if job is not None else "job data expired",
                failed_at=_naive(job.ended_at) if job is not None else None,
                traceback=exc_text if with_traceback else None,
            )
        )
    return rows


def failed_jobs(settings: Settings, offset: int = 0, limit: int = 100, search: str | None = None) -> tuple[list[FailedJob], int]:
    """A page of failed jobs (newest first per queue, queues in worker order) and the total.

    Only the page's ids are read (ZRANGE windows) and only the page's jobs are
    fetched, so 100,000 failed jobs cost the same as 100. ``search`` filters on
    id, function, error and mailbox name over the newest ``SEARCH_SCAN_CAP`` jobs;
    an exact job id is found wherever it is.
    """
    conn = connect(settings)
    with errors_as_queue(settings):
        registries = _failed_registries(conn)
        if search:
            exact = _exact_failed(conn, registries, search.strip())
            if exact:  # a job id: found among any number of failed jobs, not just the scanned newest
                return (exact if offset == 0 else []), 1
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


def _exact_failed(conn: redis.Redis, registries: list, job_id: str) -> list[FailedJob]:
    pipe = conn.pipeline(transaction=False)
    for registry in registries:
        pipe.zscore(registry.key, job_id)
    for registry, score in zip(registries, pipe.execute()):
        if score is not None:
            return _describe_failed(conn, [(registry.name, job_id)])
    return []


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
    return matches[offset : offset + limit], len(matches)


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
        hits = [r for r, s in zip(registries, scores[i * len(registries) : (i + 1) * len(registries)]) if s is not None]
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
                if job.func_name == keys.DISPATCH_JOB and job.args:
                    outbox.abandon_message_claims(conn, [int(m) for m in job.args[0]])
            except Exception:
                pass
            job.delete()
        return len(located)
