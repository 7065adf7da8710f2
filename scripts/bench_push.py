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
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.testbed.dovecot import Dovecot  # noqa: E402
from tests.testbed.redisd import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BigDovecot(Dovecot):
    """The test bed's Dovecot with the limits 10,000 concurrent IDLE sessions need.

    imap processes serve 100 sessions each (``client_limit``) instead of one: 10,000
    sessions are 100 processes, not 10,000. Each process wants an inotify instance
    for IDLE and ``fs.inotify.max_user_instances`` is 128 per uid by default: with 25
    sessions a process (400 processes) most fell back to timed checks and push
    latency at 10,000 went to ~40 s; 250 a process made Dovecot refuse hand-offs
    ("net_connect_unix(imap) failed"). Every client limit Dovecot counts sessions
    against (default, stats, anvil) is raised past 10,000.
    """

    def _write_config(self) -> None:
        super()._write_config()
        text = self.conf_path.read_text()
        text = text.replace("default_client_limit = 4000", "default_client_limit = 40000")
        text = text.replace("service imap {\n", "service imap {\n  client_limit = 100\n", 1)
        text = text.replace("service anvil {\n  client_limit = 8000", "service anvil {\n  client_limit = 40000")
        text += "service stats {\n  client_limit = 40000\n}\nimap_idle_notify_interval = 2 mins\n"
        self.conf_path.write_text(text)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Bed:
    def __init__(self, root: Path, users: dict[str, str], database_url: str | None = None):
        self.root = root
        self.redis = RedisServer(root / "redis")
        self.dovecot = BigDovecot(root / "dovecot")
        self.dovecot.add_users(users)
        self.procs: list[subprocess.Popen] = []
        from cryptography.fernet import Fernet

        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "MAILQ_VAR_DIR": str(root / "var"),
            "MAILQ_DATABASE_URL": database_url or f"sqlite:///{root / 'mailq.db'}",
            "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
            "MAILQ_SCHEDULER_INTERVAL": "0.5",
            "MAILQ_LOG_LEVEL": "WARNING",
        }

    def start(self) -> None:
        self.redis.start()
        self.env["MAILQ_REDIS_URL"] = self.redis.url
        self.dovecot.start()
        from mailq import config, db, migrations

        settings = config.load(self.env, env_file=None)
        config.use(settings)
        db.bind(settings.database_url)
        migrations.upgrade()
        self.settings = settings

    def add_mailboxes(self, users: list[str], push: str, interval: int, polled_before: bool) -> list[int]:
        """Rows inserted directly (10,000 in seconds); ``polled_before`` spreads first polls over the interval."""
        from mailq import crypto
        from mailq.models import FolderState, Mailbox, utcnow

        now = utcnow()
        rows = [
            dict(
                name=u,
                host="127.0.0.1",
                port=self.dovecot.imap_port,
                security="plain",
                username=u,
                secret=crypto.encrypt(self.settings, f"pw-{u}"),
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

    def spawn(self, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{args[0]}-{len(self.procs)}.log", "ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "mailq", *args],
            env={**self.env, **env},
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(popen)
        return popen

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.dovecot.stop()
        self.redis.stop()


def wait(predicate, what: str, timeout: float, every: float = 0.5) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"bench_push: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def connected(bed: Bed, ids: list[int]) -> int:
    from mailq.push import leases
    from mailq.queues import connect

    return sum(1 for _, state in leases.holders(connect(bed.settings), ids).values() if state == leases.CONNECTED)


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

    wait(lambda: len(rows()) == len(sent), f"{len(sent)} messages stored", timeout, every=1)
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
    bed = Bed(root / "latency", {u: f"pw-{u}" for u in users_p + users_q}, database_url)
    try:
        bed.start()
        ids_p = bed.add_mailboxes(users_p, "on", interval, polled_before=False)
        ids_q = bed.add_mailboxes(users_q, "off", interval, polled_before=False)
        bed.spawn("scheduler")
        for i in range(workers):
            bed.spawn("worker", "--name", f"bench-w{i}")
        idler = bed.spawn("idler", "--name", "bench-idler")
        wait(lambda: polled(ids_p + ids_q) == len(ids_p + ids_q), "every mailbox polled once", 120)
        wait(lambda: connected(bed, ids_p) == len(ids_p), "every pushed mailbox connected", 60)
        time.sleep(interval / 2)  # let the polled schedules spread; then measure one interval of arrivals
        cpu0, t0 = cpu_seconds(idler.pid), time.monotonic()
        sent = append_all(bed, users_p + users_q, interval, seed=1)
        latencies(sent, interval + 60)
        idler_cpu = (cpu_seconds(idler.pid) - cpu0) / (time.monotonic() - t0)
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
            "push": {
                "n": len(by_set["push"]),
                "p50": statistics.median(by_set["push"]),
                "p95": pct(by_set["push"], 0.95),
                "max": max(by_set["push"]),
            },
            "poll": {
                "n": len(by_set["poll"]),
                "p50": statistics.median(by_set["poll"]),
                "p95": pct(by_set["poll"], 0.95),
                "max": max(by_set["poll"]),
            },
            "push_append_to_poll_start": {"p50": statistics.median(to_start), "p95": pct(to_start, 0.95), "max": max(to_start)},
            "idler_cpu_share_while_feeding": idler_cpu,
        }
    finally:
        bed.stop()


def queue_length(bed: Bed) -> int:
    from rq import Queue

    from mailq.queues import QUEUE_NAMES, connect

    conn = connect(bed.settings)
    return sum(Queue(name, connection=conn).count for name in QUEUE_NAMES)


def phase_hold(root: Path, count: int, rate: float, idle_s: float, sample: int, workers: int, database_url: str | None) -> dict:
    users = [f"hold{i:05d}" for i in range(count)]
    bed = Bed(root / "hold", {u: f"pw-{u}" for u in users}, database_url)
    try:
        bed.start()
        ids = bed.add_mailboxes(users, "on", 3600, polled_before=True)
        bed.spawn("scheduler")
        for i in range(workers):
            bed.spawn("worker", "--name", f"bench-w{i}")
        idler = bed.spawn("idler", "--name", "bench-idler", MAILQ_IDLER_CONNECT_RATE=str(rate))
        time.sleep(3)
        rss0 = rss_bytes(idler.pid)
        started = time.monotonic()
        last = [0]

        def all_connected():
            n = connected(bed, ids)
            if n // 1000 != last[0] // 1000:
                print(f"  {n} connected after {time.monotonic() - started:.0f}s", file=sys.stderr)
            last[0] = n
            return n == count

        connect_s = wait(all_connected, f"{count} connections", count / rate + 900, every=1)
        time.sleep(10)  # the connect burst's polls and state writes settle
        rss1 = rss_bytes(idler.pid)
        cpu0, t0 = cpu_seconds(idler.pid), time.monotonic()
        time.sleep(idle_s)
        idle_share = (cpu_seconds(idler.pid) - cpu0) / (time.monotonic() - t0)
        held = connected(bed, ids)
        from mailq.models import PollRun

        runs_before_sample = PollRun.select().count()
        queued = queue_length(bed)
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
            "push_latency_while_held": {"n": len(lat), "p50": statistics.median(lat), "p95": pct(lat, 0.95), "max": max(lat)},
        }
    finally:
        bed.stop()


def fresh_pg(admin_dsn: str | None) -> str | None:
    """A new, empty PostgreSQL database (``drop_pg`` removes it at the end)."""
    if not admin_dsn:
        return None
    import psycopg2

    name = f"mailq_bench_push_{int(time.time() * 1000)}"
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    _made.append(name)
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


_made: list[str] = []


def drop_pg(admin_dsn: str | None) -> None:
    if not admin_dsn or not _made:
        return
    import psycopg2

    from mailq import db

    db.close()
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in _made:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


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
    with tempfile.TemporaryDirectory(prefix="mailq-bench-push-", dir=shm) as tmp, contextlib.ExitStack() as cleanup:
        cleanup.callback(drop_pg, args.pg)
        root = Path(tmp)
        if args.phase in ("latency", "all"):
            results["latency"] = phase_latency(root, args.pushed, args.polled, args.interval, args.workers, fresh_pg(args.pg))
            print(json.dumps(results["latency"], indent=2), file=sys.stderr)
        if args.phase in ("hold", "all"):
            results["hold"] = phase_hold(root, args.hold, args.rate, args.idle, args.sample, args.workers, fresh_pg(args.pg))
            print(json.dumps(results["hold"], indent=2), file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
