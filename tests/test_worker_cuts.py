"""mailq's RQ worker classes: fewer Redis round trips and log lines per job, same registries (real Redis)."""

from __future__ import annotations

import logging

import pytest
import redis
from rq import Queue, SimpleWorker, Worker, get_current_job
from rq.registry import FailedJobRegistry

from mailq import worker


def snapshot_workers() -> list[tuple[str, str, bool]]:
    """Run as a job: what `rq info` would show of the workers at this moment."""
    conn = get_current_job().connection
    return [(w.name, w.get_state(), w.last_heartbeat is not None) for w in Worker.all(connection=conn)]


def boom() -> None:
    raise ValueError("boom")


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _round_trips_per_job(conn, worker_class, monkeypatch, jobs: int = 20) -> float:
    q = Queue("email", connection=conn)
    for _ in range(jobs):
        q.enqueue("mailq.jobs.noop", result_ttl=0)
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", lambda self, *a, **k: sent.append(1) or real(self, *a, **k)
    )
    worker_class([q], connection=conn).work(burst=True, logging_level="WARNING")
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", real)
    assert q.count == 0
    return len(sent) / jobs


def test_fewer_round_trips_per_job_than_rq_itself(conn, monkeypatch):
    plain = _round_trips_per_job(conn, SimpleWorker, monkeypatch)
    ours = _round_trips_per_job(conn, worker.MailqSimpleWorker, monkeypatch)
    assert ours <= plain - 8, (plain, ours)


def test_rq_still_sees_the_worker_busy_with_a_heartbeat_and_the_failed_registry_fills(conn):
    q = Queue("email", connection=conn)
    seen = q.enqueue(snapshot_workers, result_ttl=60)
    failed = q.enqueue(boom)
    w = worker.MailqSimpleWorker([q], connection=conn, name="mailq-test-worker")
    w.work(burst=True, logging_level="WARNING")
    seen.refresh()
    assert seen.return_value() == [("mailq-test-worker", "busy", True)]
    assert failed.id in FailedJobRegistry(queue=q).get_job_ids()


def test_per_job_info_lines_are_dropped_but_failures_are_logged(conn, caplog):
    q = Queue("email", connection=conn)
    q.enqueue("mailq.jobs.noop", result_ttl=0)
    q.enqueue(boom)
    rq_log = logging.getLogger("rq.worker")
    line_filter = worker._PerJobLines()
    rq_log.addFilter(line_filter)
    caplog.set_level(logging.INFO, logger="rq.worker")
    try:
        worker.MailqSimpleWorker([q], connection=conn).work(burst=True, logging_level="INFO")
    finally:
        rq_log.removeFilter(line_filter)
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name == "rq.worker"]
    assert lines and not any("Successfully completed" in t or "Job OK" in t or "result discarded" in t for t in lines), lines
    assert any("ValueError: boom" in t for t in lines), lines  # the failure, with its traceback
    assert any("Listening on" in t for t in lines)  # the worker's own start-up lines stay
