#!/usr/bin/env python3
"""Push benchmark: new-mail latency with push beside polling, and 10,000 IDLE connections in one idler.

Everything runs privately in a temporary directory: its own Dovecot (limits
raised for 10,000 sessions), its own redis-server, SQLite, and real
``mailq scheduler``, ``mailq worker`` and ``mailq idler`` processes.

  latency  P pushed mailboxes (push on) and Q polled ones (push off), all at a
           60 s interval, in one farm; one message APPENDed to every mailbox at
           random times over one interval; APPEND -> stored row, p50/p95 per set.
  hold     H pushed mailboxes held by ONE idler: time to connect all, the idler's
           CPU while idle (share of one core), RSS per connection, and push
           latency p95 of a sample while all are held.

Usage: scripts/bench_push.py [--pushed 200 --polled 200] [--hold 10000] [--phase latency|hold|all] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.testbed import pg  # noqa: E402
from tests.testbed.bench_bed import Bed, BenchError, BigDovecot  # noqa: E402
from tests.testbed.bench_phases import percentile  # noqa: E402
from tests.testbed.procs import rss_bytes, tree_cpu  # noqa: E402
from tests.testbed.waiting import wait_for  # noqa: E402

VAR = "var"
"""The one mailq var dir of each phase's bed."""


def start_bed(bed: Bed):
    """Redis and Dovecot up, and this process on the bed's database (rows are inserted directly); returns the settings."""
    bed.redis.start()
    bed.dovecot.start()
    return bed.open_database(VAR)


def new_bed(root: Path, users: list[str], database_url: str | None) -> Bed:
    settings = {"PYTHONUNBUFFERED": "1", "MAILQ_SCHEDULER_INTERVAL": "0.5"}
    if database_url:
        settings["MAILQ_DATABASE_URL"] = database_url
    bed = Bed(root, settings, dovecot_class=BigDovecot)
    bed.dovecot.add_users({u: f"pw-{u}" for u in users})
    return bed


def add_mailboxes(bed: Bed, settings, users: list[str], push: str, interval: int, polled_before: bool) -> list[int]:
    """Rows inserted directly (10,000 in seconds); ``polled_before`` spreads first polls over the interval."""
    from mailq import crypto
    from mailq.models import FolderState, Mailbox, utcnow

    now = utcnow()
    rows = [
        dict(
            name=u,
            host="127.0.0.1",
            port=bed.dovecot.imap_port,
            security="plain",
            username=u,
            secret=crypto.encrypt(settings, f"pw-{u}"),
            interval=interval,
            push=push,
            initial_sync="all",
            last_poll_at=now if polled_before else None,
        )
        for u in users
    ]
    for i in range(0, len(rows), 500):
        Mailbox.insert_many(rows[i : i + 500]).execute()
    ids = [m.id for m in Mailbox.select(Mailbox.id).where(Mailbox.name.in_(users))]
    if polled_before:  # an empty INBOX as a poll would have left it: UIDNEXT 1, nothing to catch up on
        states = [dict(mailbox=mid, name="INBOX", uidvalidity=None, last_uid=0, uidnext=1) for mid in ids]
        for i in range(0, len(states), 500):
            FolderState.insert_many(states[i : i + 500]).execute()
    return ids


def start_farm(bed: Bed, workers: int, **idler_env: str):
    """The scheduler, W workers and one idler; returns the idler."""
    bed.spawn("scheduler", VAR, "scheduler")
    for i in range(workers):
        bed.spawn(f"worker-{i}", VAR, "worker", "--name", f"bench-w{i}")
    return bed.spawn("idler", VAR, "idler", "--name", "bench-idler", **idler_env)


def summary(values: list[float]) -> dict:
    return {"p50": statistics.median(values), "p95": percentile(sorted(values), 95), "max": max(values)}


def connected(settings, ids: list[int]) -> int:
    from mailq.push import leases
    from mailq.queues import connect

    return sum(1 for _, state in leases.holders(connect(settings), ids).values() if state == leases.CONNECTED)


def polled(ids: list[int]) -> int:
    from mailq.models import PollRun

    return PollRun.select(PollRun.mailbox).where(PollRun.mailbox.in_(ids) & (PollRun.outcome == "ok")).distinct().count()


def append_all(bed: Bed, users: list[str], spread_s: float, seed: int) -> dict[str, float]:
    """One APPEND per user at a random moment within ``spread_s``; subject -> epoch when APPEND returned."""
    rng = random.Random(seed)
    plan = sorted((rng.uniform(0, spread_s), u) for u in users)
    sent: dict[str, float] = {}
    started = time.time()
    for at, user in plan:
        delay = started + at - time.time()
        if delay > 0:
            time.sleep(delay)
        subject = f"bench-{user}-{seed}"
        raw = f"From: a@example.com\r\nTo: {user}@example.com\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
        sent[subject] = append(bed.dovecot.imap_port, user, raw)
    return sent


def append(port: int, user: str, raw: bytes) -> float:
    """APPEND one message; returns the epoch when the server's OK arrived (login and logout not counted)."""
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port, ssl=False, timeout=30) as client:
        client.login(user, f"pw-{user}")
        client.append("INBOX", raw)
        done = time.time()
        client.logout()
    return done


def latencies(sent: dict[str, float], timeout: float) -> list[float]:
    from mailq.models import Message

    def rows():
        return {s: c for s, c in Message.select(Message.subject, Message.created_at).where(Message.subject.in_(list(sent))).tuples()}

    wait_for(lambda: len(rows()) == len(sent), timeout, f"{len(sent)} messages stored", interval=1, error=BenchError)
    return [c.replace(tzinfo=UTC).timestamp() - sent[s] for s, c in rows().items()]


def poll_start_delays(sent: dict[str, float], created: dict, prefix: str) -> list[float]:
    """APPEND -> start of the poll that stored it (notification, trigger and queue wait; the rest is the poll)."""
    from mailq.models import Mailbox, PollRun

    names = {f"bench-{m.name}-1": m.id for m in Mailbox.select(Mailbox.id, Mailbox.name)}
    result = []
    for subject, at in sent.items():
        if not subject.startswith(prefix):
            continue
        run = (
            PollRun.select(PollRun.started_at)
            .where((PollRun.mailbox == names[subject]) & (PollRun.started_at <= created[subject]))
            .order_by(PollRun.started_at.desc())
            .first()
        )
        if run is not None:
            result.append(run.started_at.replace(tzinfo=UTC).timestamp() - at)
    return result or [0.0]


def phase_latency(root: Path, pushed: int, polled_n: int, interval: int, workers: int, database_url: str | None) -> dict:
    users_p = [f"push{i:05d}" for i in range(pushed)]
    users_q = [f"poll{i:05d}" for i in range(polled_n)]
    bed = new_bed(root / "latency", users_p + users_q, database_url)
    try:
        settings = start_bed(bed)
        ids_p = add_mailboxes(bed, settings, users_p, "on", interval, polled_before=False)
        ids_q = add_mailboxes(bed, settings, users_q, "off", interval, polled_before=False)
        idler = start_farm(bed, workers)
        wait_for(lambda: polled(ids_p + ids_q) == len(ids_p + ids_q), 120, "every mailbox polled once", interval=0.5, error=BenchError)
        wait_for(lambda: connected(settings, ids_p) == len(ids_p), 60, "every pushed mailbox connected", interval=0.5, error=BenchError)
        time.sleep(interval / 2)  # let the polled schedules spread; then measure one interval of arrivals
        cpu0, t0 = tree_cpu([idler.pid]), time.monotonic()
        sent = append_all(bed, users_p + users_q, interval, seed=1)
        latencies(sent, interval + 60)
        idler_cpu = (tree_cpu([idler.pid]) - cpu0) / (time.monotonic() - t0)
        by_set: dict[str, list[float]] = {"push": [], "poll": []}
        from mailq.models import Message

        created = dict(Message.select(Message.subject, Message.created_at).where(Message.subject.in_(list(sent))).tuples())
        for subject, at in sent.items():
            kind = "push" if subject.startswith("bench-push") else "poll"
            by_set[kind].append(created[subject].replace(tzinfo=UTC).timestamp() - at)
        to_start = poll_start_delays(sent, created, "bench-push")
        return {
            "interval_s": interval,
            "workers": workers,
            "push": {"n": len(by_set["push"]), **summary(by_set["push"])},
            "poll": {"n": len(by_set["poll"]), **summary(by_set["poll"])},
            "push_append_to_poll_start": summary(to_start),
            "idler_cpu_share_while_feeding": idler_cpu,
        }
    finally:
        bed.close()


def queue_length(settings) -> int:
    from rq import Queue

    from mailq.queues import QUEUE_NAMES, connect

    conn = connect(settings)
    return sum(Queue(name, connection=conn).count for name in QUEUE_NAMES)


def phase_hold(root: Path, count: int, rate: float, idle_s: float, sample: int, workers: int, database_url: str | None) -> dict:
    users = [f"hold{i:05d}" for i in range(count)]
    bed = new_bed(root / "hold", users, database_url)
    try:
        settings = start_bed(bed)
        ids = add_mailboxes(bed, settings, users, "on", 3600, polled_before=True)
        idler = start_farm(bed, workers, MAILQ_IDLER_CONNECT_RATE=str(rate))
        time.sleep(3)
        rss0 = rss_bytes(idler.pid)
        started = time.monotonic()
        last = [0]

        def all_connected():
            n = connected(settings, ids)
            if n // 1000 != last[0] // 1000:
                print(f"  {n} connected after {time.monotonic() - started:.0f}s", file=sys.stderr)
            last[0] = n
            return n == count

        wait_for(all_connected, count / rate + 900, f"{count} connections", interval=1, error=BenchError)
        connect_s = time.monotonic() - started
        time.sleep(10)  # the connect burst's polls and state writes settle
        rss1 = rss_bytes(idler.pid)
        cpu0, t0 = tree_cpu([idler.pid]), time.monotonic()
        time.sleep(idle_s)
        idle_share = (tree_cpu([idler.pid]) - cpu0) / (time.monotonic() - t0)
        held = connected(settings, ids)
        from mailq.models import PollRun

        runs_before_sample = PollRun.select().count()
        queued = queue_length(settings)
        chosen = random.Random(2).sample(users, sample)
        sent = append_all(bed, chosen, 20, seed=3)
        lat = latencies(sent, 120)
        return {
            "connections": count,
            "connect_rate_setting": rate,
            "time_to_connect_all_s": connect_s,
            "idler_cpu_share_idle": idle_share,
            "idle_window_s": idle_s,
            "idler_rss_before_mb": rss0 / 2**20,
            "idler_rss_held_mb": rss1 / 2**20,
            "rss_per_connection_kb": (rss1 - rss0) / count / 1024,
            "still_connected_after_idle": held,
            "poll_runs_before_sample": runs_before_sample,
            "polls_queued_at_sample": queued,
            "push_latency_while_held": {"n": len(lat), **summary(lat)},
        }
    finally:
        bed.close()


class Databases:
    """Fresh PostgreSQL databases made through an admin DSN (none without one); ``drop`` removes them all."""

    def __init__(self, admin_dsn: str | None):
        self.admin_dsn = admin_dsn
        self.made: list[str] = []

    def fresh(self) -> str | None:
        if not self.admin_dsn:
            return None
        name, url = pg.create_database(self.admin_dsn, "mailq_bench_push")
        self.made.append(name)
        return url

    def drop(self) -> None:
        if not self.made:
            return
        from mailq import db

        db.close()
        for name in self.made:
            pg.drop_database(self.admin_dsn, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["latency", "hold", "all"], default="all")
    parser.add_argument("--pushed", type=int, default=200)
    parser.add_argument("--polled", type=int, default=200)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--hold", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=400, help="MAILQ_IDLER_CONNECT_RATE for the hold phase")
    parser.add_argument("--idle", type=float, default=60, help="seconds of steady state measured in the hold phase")
    parser.add_argument("--sample", type=int, default=100, help="pushed messages sent while the connections are held")
    parser.add_argument("--pg", metavar="DSN", help="run on a fresh PostgreSQL database made through this admin DSN (default SQLite)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup (processes, Dovecot, databases) runs on SIGTERM too
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results: dict = {"cpus": os.cpu_count(), "note": "machine shared with other engineers' test runs"}
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # 10,000 maildirs: creating and deleting them on disk takes minutes
    databases = Databases(args.pg)
    with tempfile.TemporaryDirectory(prefix="mailq-bench-push-", dir=shm) as tmp, contextlib.ExitStack() as cleanup:
        cleanup.callback(databases.drop)
        root = Path(tmp)
        try:
            if args.phase in ("latency", "all"):
                results["latency"] = phase_latency(root, args.pushed, args.polled, args.interval, args.workers, databases.fresh())
                print(json.dumps(results["latency"], indent=2), file=sys.stderr)
            if args.phase in ("hold", "all"):
                results["hold"] = phase_hold(root, args.hold, args.rate, args.idle, args.sample, args.workers, databases.fresh())
                print(json.dumps(results["hold"], indent=2), file=sys.stderr)
        except BenchError as exc:
            print(f"bench_push: {exc}", file=sys.stderr)
            return 1
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
