"""The exporter as a process beside a real farm: figures match the database, survive its restart;
``/healthz`` turns unhealthy when the scheduler is killed (about 20 s of farm time)."""

from __future__ import annotations

import signal

import peewee as pw
import pytest

from mailq.models import Message, PollRun
from tests.testbed.dovecot import free_port, port_open
from tests.testbed.procs import mailq_argv

from .farm_helpers import add_mailboxes, farm, stored  # noqa: F401
from .helpers import wait_for
from .metrics_helpers import fetch, samples, value

pytestmark = pytest.mark.slow

COUNTS = [1, 2, 3, 4, 5, 1, 2, 3]


def quiet_hook(message_id: int) -> None:
    """A hook that accepts everything (the farm's workers import it through PYTHONPATH)."""


def _exporter(farm):
    port = free_port()
    proc = farm._start(f"metrics-{port}", mailq_argv("metrics", "--host", "127.0.0.1", "--port", str(port)))
    wait_for(lambda: port_open(port), 20, "the exporter to listen")
    return proc, f"http://127.0.0.1:{port}"


def test_scraped_figures_match_the_database_after_a_farm_run_and_healthz_follows_the_scheduler(settings, dovecot, farm):
    import os
    from pathlib import Path

    boxes = add_mailboxes(settings, dovecot, "met", COUNTS, interval=1, max_bytes=30_000)
    ids = [m.id for m, _, _ in boxes]
    farm.configure(
        MAILQ_MAX_MESSAGE_BYTES=12_000,
        MAILQ_HOOK="tests.test_metrics_farm:quiet_hook",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    scheduler = farm.scheduler()
    worker = farm.worker("met-w0")
    exporter, base = _exporter(farm)
    wait_for(lambda: stored(ids) == sum(COUNTS), 60, "every message stored")
    wait_for(lambda: Message.select().where(Message.dispatched_at.is_null(False)).count() == sum(COUNTS), 60, "every message dispatched")
    wait_for(lambda: fetch(base + "/healthz")[0] == 200, 20, "a healthy farm")
    farm.kill(worker, signal.SIGTERM)
    wait_for(lambda: worker.popen.poll() is not None, 30, "the worker to finish its job and exit")

    finished = dict(
        PollRun.select(PollRun.outcome, pw.fn.COUNT(PollRun.id)).where(PollRun.outcome != "running").group_by(PollRun.outcome).tuples()
    )
    kept = Message.select().where(Message.sha256.is_null(False))
    skipped = Message.select().where(Message.skipped_reason.is_null(False)).count()
    assert skipped > 0, "the test needs some oversize messages"
    total_bytes = int(kept.select(pw.fn.SUM(Message.size)).scalar())

    def check(s) -> None:
        assert {o: value(s, "mailq_polls_total", outcome=o) for o in finished} == finished
        assert value(s, "mailq_poll_duration_seconds_count") == sum(finished.values())
        assert value(s, "mailq_messages_ingested_total") == kept.count()
        assert value(s, "mailq_ingested_bytes_total") == total_bytes
        assert value(s, "mailq_messages_skipped_total", reason="oversize") == skipped
        assert value(s, "mailq_dispatches_total", outcome="delivered") == sum(COUNTS)
        assert value(s, "mailq_dispatch_latency_seconds_count") == sum(COUNTS)
        assert value(s, "mailq_mailboxes", state="ok") == len(COUNTS)
        assert value(s, "mailq_failed_jobs", queue="email") == 0

    check(samples(base))
    farm.kill(exporter, signal.SIGKILL)
    exporter, base = _exporter(farm)  # a fresh exporter process: the same figures
    check(samples(base))

    assert fetch(base + "/healthz")[0] == 200
    farm.kill(scheduler, signal.SIGKILL)
    wait_for(lambda: fetch(base + "/healthz")[0] == 503, 30, "healthz to notice the scheduler is gone")
    status, body = fetch(base + "/healthz")
    assert "no live scheduler" in body
    assert value(samples(base), "mailq_scheduler_up") == 0
