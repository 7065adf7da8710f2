"""``mailq worker`` as a process: it stops promptly when asked and outlives a Redis restart."""

import signal
import time

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job

from tests.farm_helpers import farm  # noqa: F401
from tests.helpers import wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _job_done(settings, job_id: str) -> bool:
    conn = redis.Redis.from_url(settings.redis_url)
    try:
        return Job.fetch(job_id, connection=conn).get_status() == "finished"
    except Exception:
        return False


def _waiting_for_jobs(settings, name: str) -> bool:
    """The worker is in its loop (signal handlers installed), blocked waiting for a job: rq's own state."""
    conn = redis.Redis.from_url(settings.redis_url)
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn)
    return worker is not None and worker.get_state() == "idle"


def test_an_idle_worker_stops_on_sigterm_at_once(farm, settings):
    proc = farm.worker("w1")
    wait_for(lambda: _waiting_for_jobs(settings, "w1"), timeout=20, what="the worker to start its loop")
    started = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(4) == 0  # well inside honcho's 5 s, without a reconnect loop
    assert time.monotonic() - started < 4
    assert "stopped unexpectedly" not in proc.log_text()


def test_a_worker_outlives_a_redis_restart_and_keeps_working(farm, settings, redis_server):
    proc = farm.worker("w1")
    wait_for(lambda: _waiting_for_jobs(settings, "w1"), timeout=20, what="the worker to start its loop")
    before = len(proc.log_text())
    redis_server.stop()
    wait_for(  # whatever rq or mailq says about it: the worker noticed, so the outage really interrupted it
        lambda: len(proc.log_text()) > before,
        timeout=30,
        what="the worker to react to Redis going away",
    )
    redis_server.start()
    assert proc.popen.poll() is None  # still running: under honcho an exit would stop the whole farm
    queue = Queue("default", connection=redis.Redis.from_url(settings.redis_url))
    job = queue.enqueue("mailq.jobs.noop", result_ttl=60)
    wait_for(lambda: _job_done(settings, job.id), timeout=60, what="a job run after the restart")
