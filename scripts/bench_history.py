#!/usr/bin/env python3
"""How big ``poll_run`` gets: a simulated day of polls at N mailboxes, with and without the bounds.

Rows are generated directly (one per mailbox per minute, as the farm writes
them: an ok idle poll with its worker name), minute after minute, with the
pruning steps the scheduler runs in a minute (``history.prune`` every
``history.STEP_EVERY`` seconds) after each simulated minute. Reports the database file size and row counts after the
simulated span, and bytes per row, so an unbounded day can be extrapolated.

    scripts/bench_history.py --mailboxes 10000 --minutes 1440 [--database-url URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailq import config, db, history, migrations
from mailq.db import database
from mailq.models import Mailbox, PollRun, utcnow


def size_bytes(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return database.execute_sql("SELECT pg_total_relation_size('poll_run')").fetchone()[0]


def simulate(url: str, mailboxes: int, minutes: int, bounded: bool) -> dict:
    settings = config.load({"MAILQ_DATABASE_URL": url, "MAILQ_SECRET_KEY": "x"}, env_file=None)
    if not bounded:
        settings = settings.replace(poll_history=0, poll_history_per_mailbox=0)
    db.bind(url)
    migrations.upgrade()
    with database.atomic():
        rows = [{"name": f"m{i}", "host": "h", "port": 143, "username": f"m{i}", "secret": "-"} for i in range(mailboxes)]
        for i in range(0, len(rows), 500):
            Mailbox.insert_many(rows[i : i + 500]).execute()
    ids = [m.id for m in Mailbox.select(Mailbox.id)]
    start = utcnow() - timedelta(minutes=minutes)
    cursor, prune_s, insert_s, pruned = 0, 0.0, 0.0, 0
    for minute in range(minutes):
        at = start + timedelta(minutes=minute)
        t = time.perf_counter()
        batch = [(mid, at, at + timedelta(milliseconds=8), "ok", 0, 0, 1, "bench-host:12345") for mid in ids]
        with database.atomic():
            for i in range(0, len(batch), 1000):
                PollRun.insert_many(
                    batch[i : i + 1000],
                    fields=[
                        PollRun.mailbox,
                        PollRun.started_at,
                        PollRun.finished_at,
                        PollRun.outcome,
                        PollRun.new_count,
                        PollRun.skipped_count,
                        PollRun.folders_checked,
                        PollRun.worker,
                    ],
                ).execute()
        insert_s += time.perf_counter() - t
        for _ in range(int(60 / history.STEP_EVERY) if bounded else 0):  # the scheduler's steps in a minute
            t = time.perf_counter()
            result = history.prune(settings, cursor, now=at)
            cursor, pruned = result.cursor, pruned + result.by_age + result.by_count
            prune_s += time.perf_counter() - t
    count = PollRun.select().count()
    size = size_bytes(url)
    db.close()
    return {
        "mailboxes": mailboxes,
        "minutes": minutes,
        "bounded": bounded,
        "rows": count,
        "pruned": pruned,
        "db_bytes": size,
        "bytes_per_row": size / max(count, 1),
        "insert_s": insert_s,
        "prune_s": prune_s,
        "prune_ms_per_minute": prune_s * 1000 / minutes,
        "poll_history_s": settings.poll_history,
        "poll_history_per_mailbox": settings.poll_history_per_mailbox,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--unbounded-minutes", type=int, default=144, help="span of the unbounded run (bytes per row)")
    parser.add_argument("--database-url", default=None, help="default: SQLite files in a temporary directory")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mailq-history-"))
    out = {}
    for bounded, minutes in ((True, args.minutes), (False, args.unbounded_minutes)):
        url = args.database_url or f"sqlite:///{tmp / ('bounded' if bounded else 'unbounded')}.db"
        out["bounded" if bounded else "unbounded"] = r = simulate(url, args.mailboxes, minutes, bounded)
        print(json.dumps(r), flush=True)
    u = out["unbounded"]
    out["unbounded_day_bytes_estimate"] = u["bytes_per_row"] * args.mailboxes * 1440
    print(json.dumps({"unbounded_day_bytes_estimate": out["unbounded_day_bytes_estimate"]}))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
