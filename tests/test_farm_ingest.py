"""The farm end to end: real scheduler and worker processes, real Redis, real Dovecot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailq import ops
from mailq.models import Message

from .farm_helpers import add_mailboxes, duplicates, farm, overlapping_runs, runs_of, stored  # noqa: F401
from .helpers import wait_for


def test_fifty_mailboxes_are_ingested_exactly_once_by_a_scheduler_and_three_workers(settings, dovecot, farm, backend, request):
    counts = [1 + i % 6 for i in range(50)]
    boxes = add_mailboxes(settings, dovecot, "ing", counts, interval=2)
    ids = [m.id for m, _, _ in boxes]
    farm.scheduler()
    farm.worker("ingest-w0")
    farm.worker("ingest-w1")
    farm.rq_worker("ingest-rq")  # a plain `rq worker` does the same job

    wait_for(lambda: stored(ids) >= sum(counts), timeout=90, what=f"{sum(counts)} messages stored")
    # keep the farm running until every mailbox was polled again: the repeat polls must find nothing new
    wait_for(lambda: all(len(runs_of(m)) >= 2 for m in ids), timeout=60, what="a second poll of every mailbox")
    farm.assert_alive()
    assert stored(ids) == sum(counts)
    assert duplicates() == []
    for (mailbox, _, _), n in zip(boxes, counts):
        assert Message.select().where(Message.mailbox == mailbox.id).count() == n
    bad = overlapping_runs(ids)
    assert bad == [], [(r.id, r.started_at, r.finished_at, r.outcome, r.worker) for m, a, b in bad[:2] for r in runs_of(m)]

    info = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "info", "--url", settings.redis_url], capture_output=True, text=True, timeout=60
    )
    assert info.returncode == 0, info.stderr
    for name in ("email-high", "email", "workflow", "default"):
        assert f"\n{name} " in "\n" + info.stdout, info.stdout
    assert "ingest-w0" in info.stdout
    assert {w.name: w.successes for w in ops.workers(settings)}["ingest-rq"] > 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_backlog_beyond_the_poll_budget_is_worked_off_at_once_not_an_interval_later(settings, dovecot, farm):
    ((box, _, _),) = add_mailboxes(settings, dovecot, "backlog", [30], interval=3600)
    farm.configure(MAILQ_POLL_BUDGET_MESSAGES=10, MAILQ_FETCH_BATCH=5)
    farm.worker("backlog-w0")
    wait_for(lambda: ops.workers(settings), timeout=30, what="the worker to register")
    ops.poll_now(settings, [box.id], wait=True, timeout=60)
    first = runs_of(box.id)
    assert len(first) >= 1 and first[0].finished_at is not None and first[0].new_count == 10, [
        (r.outcome, r.error, r.new_count) for r in first
    ]
    wait_for(lambda: stored([box.id]) == 30, timeout=30, what="the follow-up polls")
    outcomes = [r.outcome for r in runs_of(box.id)]
    assert outcomes[:2] == ["partial", "partial"] and len(outcomes) >= 3
