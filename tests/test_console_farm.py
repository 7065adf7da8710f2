"""The console against real Redis and a real database (SQLite and PostgreSQL), with real rq jobs.

Each test drives the console with Pilot and then checks Redis or the database
directly: the action must really have happened, not just been notified.
"""

from __future__ import annotations

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry

from console.app import MailqConsole
from console.screens.confirm import ConfirmScreen
from console.source import OpsSource
from console.widgets.banner import StatusBanner
from console.widgets.keyed_table import KeyedTable
from mailq import mailboxes, ops, schedule
from mailq.models import Mailbox
from tests.console_helpers import settle, sync, table_keys, until

SIZE = (140, 36)
QUIET = 3600.0
"""Refresh interval for action tests: only the refreshes the test causes happen."""


def add_mailbox(settings, name: str, host: str = "imap.example.test") -> Mailbox:
    spec = mailboxes.validate(name=name, host=host, port=993, security="ssl", username=name, password="pw")
    return mailboxes.save(settings, spec)[0]


def failed_jobs(settings, count: int) -> list[str]:
    """Real jobs that really fail: enqueued on `default`, run by a burst SimpleWorker."""
    conn = redis.Redis.from_url(settings.redis_url)
    queue = Queue("default", connection=conn)
    ids = [queue.enqueue("operator.truediv", 1, 0).id for _ in range(count)]
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert sorted(FailedJobRegistry("default", connection=conn).get_job_ids()) == sorted(ids)
    return ids


@sync
async def test_requeueing_a_failed_job_puts_it_back_on_its_queue(settings):
    job_id, other = failed_jobs(settings, 2)
    conn = redis.Redis.from_url(settings.redis_url)
    app = MailqConsole(OpsSource(settings, QUIET), view="failed")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        assert sorted(table_keys(table)) == sorted([job_id, other])
        table.move_cursor(row=table.get_row_index(job_id))
        assert "ZeroDivisionError" in table.get_row(job_id)[4].plain
        await pilot.press("r")
        await settle(pilot)
        assert job_id in Queue("default", connection=conn).job_ids
        assert FailedJobRegistry("default", connection=conn).get_job_ids() == [other]
        assert table_keys(table) == [other]


@sync
async def test_requeue_all_says_how_many_and_can_be_cancelled(settings):
    ids = failed_jobs(settings, 3)
    conn = redis.Redis.from_url(settings.redis_url)
    app = MailqConsole(OpsSource(settings, QUIET), view="failed")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Requeue all 3 failed jobs?" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await settle(pilot)
        assert len(FailedJobRegistry("default", connection=conn)) == 3
        assert Queue("default", connection=conn).job_ids == []
        await pilot.press("R", "y")
        await settle(pilot)
        assert sorted(Queue("default", connection=conn).job_ids) == sorted(ids)
        assert len(FailedJobRegistry("default", connection=conn)) == 0


@sync
async def test_pause_really_removes_the_schedule_and_resume_restores_it(settings):
    mailbox = add_mailbox(settings, "pause-me@example.test")
    ops.resync(settings)
    conn = redis.Redis.from_url(settings.redis_url)
    assert [e.mailbox_id for e in schedule.entries(conn)] == [mailbox.id]
    app = MailqConsole(OpsSource(settings, QUIET), view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert schedule.entries(conn) == []
        assert Mailbox.get_by_id(mailbox.id).paused
        assert app.screen.query_one(KeyedTable).get_row(str(mailbox.id))[1].plain == "paused"  # the State column
        await pilot.press("u")
        await settle(pilot)
        assert [e.mailbox_id for e in schedule.entries(conn)] == [mailbox.id]
        assert not Mailbox.get_by_id(mailbox.id).paused


@sync
async def test_poll_now_really_enqueues_a_poll(settings):
    add_mailbox(settings, "first@example.test")
    mailbox = add_mailbox(settings, "poll-me@example.test")
    conn = redis.Redis.from_url(settings.redis_url)
    app = MailqConsole(OpsSource(settings, QUIET), view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "n")
        await settle(pilot)
    jobs = Queue("email", connection=conn).jobs
    assert [(j.func_name, j.args[0]) for j in jobs] == [("mailq.jobs.poll", mailbox.id)]


@pytest.mark.parametrize("backend", ["sqlite"])
@sync
async def test_the_filter_narrows_the_table_in_the_database(settings):
    ids = {
        name: add_mailbox(settings, name, host).id
        for name, host in [("sales@acme.test", "imap.acme.test"), ("ops@acme.test", "imap.acme.test"), ("x@other.test", "mail.other.test")]
    }
    Mailbox.update(paused=True).where(Mailbox.id == ids["ops@acme.test"]).execute()
    app = MailqConsole(OpsSource(settings, QUIET), view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        assert table.row_count == 3
        await pilot.press("slash", *"acme")
        await settle(pilot)
        assert sorted(table_keys(table)) == sorted([str(ids["sales@acme.test"]), str(ids["ops@acme.test"])])
        await pilot.press(*" state:paused", "enter")
        await settle(pilot)
        assert table_keys(table) == [str(ids["ops@acme.test"])]


@pytest.mark.parametrize("backend", ["sqlite"])
@sync
async def test_the_banner_appears_when_redis_goes_away_and_goes_when_it_is_back(settings, redis_server):
    add_mailbox(settings, "still-here@example.test")
    app = MailqConsole(OpsSource(settings, 0.3), view="queues")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        banner = app.screen.query_one(StatusBanner)
        assert banner.has_class("-hidden")
        queues_before = table_keys(app.screen.query_one("#queues", KeyedTable))
        redis_server.stop()
        try:
            await until(pilot, lambda: not banner.has_class("-hidden"), timeout=15, what="the Redis banner")
            assert "Redis" in str(banner.render())
            assert table_keys(app.screen.query_one("#queues", KeyedTable)) == queues_before  # last data stays
            await pilot.press("2")  # the database still answers: other views keep working
            await until(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 1, what="mailbox rows")
            await pilot.press("3")
        finally:
            redis_server.start()
        banner = app.screen.query_one(StatusBanner)
        await until(pilot, lambda: banner.has_class("-hidden"), timeout=15, what="the banner to go")
