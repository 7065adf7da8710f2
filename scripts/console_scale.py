"""How long one console refresh takes at 10,000 mailboxes and 100,000 failed jobs.

Fills a throw-away database (SQLite, or --database-url for PostgreSQL) with
10,000 mailboxes, a day of poll runs for some and an hour of messages, and a
private redis-server with 100,000 real failed rq jobs (created like a worker
records a failure: job hash with status and exception, a failure Result, an
entry in the queue's FailedJobRegistry) plus one recurring poll per enabled
mailbox. Then it times each view's refresh as the console does it (the
screen's own ``fetch`` through ``OpsSource``), and the full round trip in a
headless console (read in the worker thread + diffing the table on screen).

Run: python scripts/console_scale.py [--mailboxes 10000] [--failed 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from mailq import config, crypto, db, migrations, ops
from mailq.models import Mailbox, Message, PollRun, utcnow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the dev harness lives in tests/
from tests.testbed.redisd import RedisServer

TRACEBACK = (
    'Traceback (most recent call last):\n  File "mailq/jobs.py", line 120, in poll\n'
    '    result = _run_poll(settings, conn, mailbox_id, force, renewer, started)\n'
    "mailq.errors.ImapTimeoutError: IMAP read timed out after 60s\n"
)
out = Console(highlight=False)


def fill_database(settings, count: int) -> None:
    secret = crypto.encrypt(settings, "pw")
    now = utcnow()
    states = ["ok"] * 7 + ["failing", "auth_error", "ok"]
    rows = [
        dict(
            name=f"box{i:05d}@tenant{i % 300}.example",
            host=f"imap.tenant{i % 300}.example",
            port=993,
            security="ssl",
            username=f"box{i:05d}",
            secret=secret,
            folders=["INBOX"],
            interval=60,
            state=states[i % 10],
            paused=i % 50 == 0,
            consecutive_failures=3 if states[i % 10] == "failing" else 0,
            last_poll_at=now - timedelta(seconds=i % 90),
            last_success_at=now - timedelta(seconds=i % 900),
            last_error="connection: [Errno 111] Connection refused" if states[i % 10] == "failing" else None,
        )
        for i in range(count)
    ]
    with db.database.atomic():
        for start in range(0, len(rows), 500):
            Mailbox.insert_many(rows[start : start + 500]).execute()
    ids = [m.id for m in Mailbox.select(Mailbox.id)]
    messages = [
        dict(
            mailbox=ids[i % len(ids)],
            folder="INBOX",
            uidvalidity=1,
            uid=i + 1,
            subject=f"message {i}",
            size=2000,
            sha256=f"{i:064x}",
            created_at=now - timedelta(seconds=(i * 7) % 3600),
        )
        for i in range(20_000)
    ]
    runs = [
        dict(
            mailbox=ids[i % len(ids)],
            started_at=now - timedelta(minutes=i % 1440),
            finished_at=now - timedelta(minutes=i % 1440) + timedelta(seconds=2),
            outcome="ok",
            new_count=1,
        )
        for i in range(50_000)
    ]
    with db.database.atomic():
        for start in range(0, len(messages), 500):
            Message.insert_many(messages[start : start + 500]).execute()
        for start in range(0, len(runs), 500):
            PollRun.insert_many(runs[start : start + 500]).execute()


def fill_failed(conn: redis.Redis, count: int, mailbox_ids: list[int]) -> None:
    """Real failed jobs, written the way a worker records a failure, 1,000 per pipeline."""
    registry = FailedJobRegistry("email", connection=conn)
    ended = datetime.now(UTC)
    for start in range(0, count, 1000):
        pipe = conn.pipeline(transaction=False)
        for i in range(start, min(start + 1000, count)):
            job = Job.create(
                "mailq.jobs.poll",
                args=(mailbox_ids[i % len(mailbox_ids)],),
                connection=conn,
                id=f"poll-{i}-{i:012x}",
                origin="email",
                description="poll mailbox",
            )
            job._status = JobStatus.FAILED
            job.started_at = job.ended_at = ended
            registry.add(job, exc_string=TRACEBACK, pipeline=pipe)
            Result.create_failure(job, ttl=None, exc_string=TRACEBACK, pipeline=pipe)
        pipe.execute()


def time_fetches(source, repeat: int) -> list[tuple[str, float, float]]:
    """(view, median s, max s) of each screen's fetch, called exactly as the refresh worker calls it."""
    from console.screens.failed import FailedScreen
    from console.screens.mailboxes import MailboxesScreen
    from console.screens.overview import OverviewScreen
    from console.screens.queues import QueuesScreen
    from console.screens.schedule import ScheduleScreen

    results = []
    for name, cls in [
        ("overview", OverviewScreen),
        ("mailboxes", MailboxesScreen),
        ("queues", QueuesScreen),
        ("failed", FailedScreen),
        ("schedule", ScheduleScreen),
    ]:
        screen = cls()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            with source.session():
                screen.fetch(source)
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times), max(times)))
    # pages deep in the lists and a filtered read cost the same window
    deep = MailboxesScreen()
    deep.page_offset = 9_800
    failed_deep = FailedScreen()
    failed_deep.page_offset = 99_900
    filtered = MailboxesScreen()
    filtered.filter_text, filtered.filter_state = "tenant7", "failing"
    for name, screen in [("mailboxes, last page", deep), ("failed, last page", failed_deep), ("mailboxes, text+state filter", filtered)]:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            with source.session():
                screen.fetch(source)
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times), max(times)))
    times = []
    for _ in range(repeat):  # the schedule view's comparison: its own worker, every 30 s
        started = time.perf_counter()
        with source.session():
            source.schedule_diff()
        times.append(time.perf_counter() - started)
    results.append(("schedule comparison (every 30 s, own worker)", statistics.median(times), max(times)))
    return results


async def time_console(source, views: list[str]) -> list[tuple[str, float, float]]:
    """(view, fetch s, full round trip s): key press to table updated, in a headless console."""
    from console.app import MailqConsole

    app = MailqConsole(source)
    results = []
    async with app.run_test(size=(160, 48)) as pilot:
        await _idle(pilot)
        for key, name in zip("12345", views):
            await pilot.press(key)
            await _idle(pilot)
            rounds = []
            fetches = []
            for _ in range(3):
                count = app.refreshes
                started = time.perf_counter()
                app.refresh_now()
                while app.refreshes == count or app.busy:
                    await pilot.pause(0.005)
                rounds.append(time.perf_counter() - started)
                fetches.append(app.last_refresh_seconds or 0.0)
            results.append((name, statistics.median(fetches), statistics.median(rounds)))
    return results


async def _idle(pilot) -> None:
    while pilot.app.busy:
        await pilot.pause(0.01)
    await pilot.pause()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--failed", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a throw-away SQLite file")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailq-scale-") as tmp:
        root = Path(tmp)
        server = RedisServer(root / "redis")
        server.start()
        try:
            settings = config.load(
                {
                    "MAILQ_VAR_DIR": str(root / "var"),
                    "MAILQ_REDIS_URL": server.url,
                    "MAILQ_DATABASE_URL": args.database_url or f"sqlite:///{root / 'mailq.db'}",
                    "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
                },
                env_file=None,
            )
            config.use(settings)
            db.bind(settings.database_url)
            migrations.upgrade()
            conn = redis.Redis.from_url(server.url)

            started = time.perf_counter()
            fill_database(settings, args.mailboxes)
            out.print(f"database: {args.mailboxes:,} mailboxes, 20,000 messages, 50,000 poll runs ({time.perf_counter() - started:.1f} s)")
            started = time.perf_counter()
            ids = [m.id for m in Mailbox.select(Mailbox.id)]
            fill_failed(conn, args.failed, ids)
            out.print(f"redis: {args.failed:,} failed jobs ({time.perf_counter() - started:.1f} s)")
            started = time.perf_counter()
            report = ops.resync(settings)
            out.print(
                f"schedule: {len(report.added):,} recurring polls ({time.perf_counter() - started:.1f} s); "
                f"redis memory {conn.info('memory')['used_memory_human']}"
            )
            db.close()

            from console.source import OpsSource

            source = OpsSource(settings, refresh_interval=3600)
            table = Table(title=f"one refresh: {args.mailboxes:,} mailboxes, {args.failed:,} failed jobs")
            table.add_column("view")
            table.add_column("read, median", justify="right")
            table.add_column("read, max", justify="right")
            for name, median, worst in time_fetches(source, args.repeat):
                table.add_row(name, f"{median * 1000:.0f} ms", f"{worst * 1000:.0f} ms")
            out.print(table)

            views = ["overview", "mailboxes", "queues", "failed", "schedule"]
            table = Table(title="headless console: refresh round trip (read in the worker + table diff on screen)")
            table.add_column("view")
            table.add_column("read", justify="right")
            table.add_column("read + draw", justify="right")
            for name, fetch, round_trip in asyncio.run(time_console(source, views)):
                table.add_row(name, f"{fetch * 1000:.0f} ms", f"{round_trip * 1000:.0f} ms")
            out.print(table)
        finally:
            db.close()
            server.stop()


if __name__ == "__main__":
    main()
