"""Bounded poll history (MAILQ_POLL_HISTORY, MAILQ_POLL_HISTORY_PER_MAILBOX), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

import pytest

from mailq import config, history, mailboxes, ops
from mailq.db import database
from mailq.errors import ConfigError
from mailq.models import Mailbox, Message, PollRun, utcnow
from mailq.scheduler import Runner


def make_mailbox(settings, name: str) -> Mailbox:
    spec = mailboxes.validate(name=name, host="imap.example.org", port=993, username=name, password="pw")
    return mailboxes.save(settings, spec)[0]


def add_runs(mailbox_id: int, count: int, newest_age_s: float = 0, step_s: float = 60, outcome: str = "ok") -> None:
    """``count`` finished runs, one every ``step_s`` seconds back from ``newest_age_s`` ago, inserted directly."""
    now = utcnow()
    rows = []
    for i in range(count):
        started = now - timedelta(seconds=newest_age_s + i * step_s)
        rows.append({"mailbox": mailbox_id, "started_at": started, "finished_at": started, "outcome": outcome})
    with database.atomic():
        for i in range(0, len(rows), 200):
            PollRun.insert_many(rows[i : i + 200]).execute()


def runs_of(mailbox_id: int) -> int:
    return PollRun.select().where(PollRun.mailbox == mailbox_id).count()


def test_durations_parse_with_units_and_reject_nonsense():
    assert config.load({"MAILQ_POLL_HISTORY": "7d"}, env_file=None).poll_history == 7 * 86400
    assert config.load({"MAILQ_POLL_HISTORY": "12h"}, env_file=None).poll_history == 12 * 3600
    assert config.load({"MAILQ_POLL_HISTORY": "90"}, env_file=None).poll_history == 90
    assert config.load({}, env_file=None).poll_history_per_mailbox == 200
    with pytest.raises(ConfigError, match="MAILQ_POLL_HISTORY: expected seconds or a duration"):
        config.load({"MAILQ_POLL_HISTORY": "a week"}, env_file=None)
    with pytest.raises(ConfigError, match="must not be negative"):
        config.load({"MAILQ_POLL_HISTORY": "-1d"}, env_file=None)


def test_prune_keeps_the_newest_rows_per_mailbox_and_drops_old_ones(settings):
    settings = settings.replace(poll_history=3600, poll_history_per_mailbox=30)
    busy, quiet, other = (make_mailbox(settings, n) for n in ("busy", "quiet", "other"))
    add_runs(busy.id, 50)  # 50 minutes of polls: within the age, over the count
    add_runs(quiet.id, 10, newest_age_s=1800, step_s=600)  # 30 .. 120 minutes old: some beyond the age
    add_runs(other.id, 5)
    newest_busy = {r.id for r in PollRun.select().where(PollRun.mailbox == busy.id).order_by(PollRun.started_at.desc()).limit(30)}
    result = history.prune(settings)
    assert result.done and result.by_count == 20 and result.by_age == 7  # quiet keeps 30, 40, 50 minutes
    assert {r.id for r in PollRun.select().where(PollRun.mailbox == busy.id)} == newest_busy
    assert runs_of(quiet.id) == 3 and runs_of(other.id) == 5
    assert history.prune(settings).by_age == 0 and history.prune(settings).by_count == 0  # idempotent


def test_prune_is_incremental_in_small_batches_and_resumes_from_its_cursor(settings, monkeypatch):
    monkeypatch.setattr(history, "BATCH", 7)
    settings = settings.replace(poll_history=0, poll_history_per_mailbox=3)
    boxes = [make_mailbox(settings, f"m{i}") for i in range(5)]
    for m in boxes:
        add_runs(m.id, 20)
    statements = []
    real_delete = PollRun.delete
    monkeypatch.setattr(PollRun, "delete", classmethod(lambda cls: statements.append(1) or real_delete()))
    # A fake clock: each look at it is one tick, and each step gets three, so a step runs one batch at most.
    real_monotonic, clock = time.monotonic, itertools.count()
    monkeypatch.setattr(history.time, "monotonic", lambda: next(clock))
    cursor, steps, finished = 0, 0, False
    while not finished and steps < 100:
        _, cursor, finished = history.prune_by_count(3, cursor, deadline=next(clock) + 3, slice_size=2)
        steps += 1
    monkeypatch.setattr(history.time, "monotonic", real_monotonic)
    history.prune(settings)  # a full pass finds nothing left
    assert [runs_of(m.id) for m in boxes] == [3] * 5
    assert len(statements) >= 5 * 17 / 7 and steps > 5  # 17 rows too many per mailbox, deleted 7 at most at a time


def test_writers_go_on_while_a_large_prune_runs(settings):
    """Pruning holds the write lock per batch only: a poll recording its run is never stuck behind it."""
    settings = settings.replace(poll_history=60, poll_history_per_mailbox=0)
    mailbox = make_mailbox(settings, "big")
    add_runs(mailbox.id, 6000, newest_age_s=3600, step_s=1)
    waits, stop = [], threading.Event()

    def writer():
        from mailq import db

        db.bind(settings.database_url)
        try:
            while not stop.is_set():
                t = time.monotonic()
                with database.atomic():
                    PollRun.create(mailbox=mailbox.id, outcome="ok", finished_at=utcnow())
                waits.append(time.monotonic() - t)
        finally:
            db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = history.prune(settings, budget_s=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result.done and result.by_age == 6000
    assert waits and max(waits) < 1.0, f"a write waited {max(waits):.2f}s behind the prune"
    assert PollRun.select().where(PollRun.started_at < utcnow() - timedelta(seconds=60)).count() == 0


def test_pruning_history_keeps_messages_health_and_the_recent_runs_shown(settings):
    settings = settings.replace(poll_history=86400, poll_history_per_mailbox=60)
    mailbox = make_mailbox(settings, "kept")
    add_runs(mailbox.id, 100, step_s=60)
    add_runs(mailbox.id, 5, newest_age_s=3 * 86400, outcome="error")
    Message.create(mailbox=mailbox.id, folder="INBOX", uidvalidity=1, uid=1, size=10)
    Mailbox.update(last_error="old trouble", state="failing").where(Mailbox.id == mailbox.id).execute()
    history.prune(settings)
    info, runs = ops.mailbox_detail(settings, mailbox.id)
    assert len(runs) == 50 and all(r.outcome == "ok" for r in runs)  # the console's detail still fills up
    assert runs_of(mailbox.id) == 60
    assert Message.select().where(Message.mailbox == mailbox.id).count() == 1
    assert Mailbox.get_by_id(mailbox.id).last_error == "old trouble"


def test_status_reports_recent_outcomes_and_the_bounds(settings):
    mailbox = make_mailbox(settings, "st")
    add_runs(mailbox.id, 4, step_s=60)
    add_runs(mailbox.id, 2, step_s=60, outcome="error")
    add_runs(mailbox.id, 3, newest_age_s=7200)
    polls = ops.status(settings)["poll_history"]
    assert polls["outcomes"] == {"ok": 4, "error": 2}
    assert polls["keep_s"] == 7 * 86400 and polls["keep_per_mailbox"] == 200 and polls["oldest_at"].endswith("Z")


def test_the_scheduler_prunes_in_short_steps_on_its_loop(settings):
    settings = settings.replace(poll_history=3600, poll_history_per_mailbox=10)
    mailbox = make_mailbox(settings, "sched")
    add_runs(mailbox.id, 30)
    add_runs(mailbox.id, 3, newest_age_s=7200)
    runner = Runner(settings)
    runner.tick()
    assert runs_of(mailbox.id) == 10
    add_runs(mailbox.id, 5)
    runner.tick()  # the next step waits history.STEP_EVERY seconds: a pass never prunes twice
    assert runs_of(mailbox.id) == 15
