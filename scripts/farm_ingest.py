#!/usr/bin/env python
"""End-to-end ingest benchmark: N mailboxes x M realistic messages through ``honcho start -c worker=W``.

Everything is private and thrown away afterwards: a Dovecot and a redis-server
under a temporary directory, and a fresh SQLite file or PostgreSQL database.
The clock starts when honcho starts and stops when the last row is stored.

    /work/venv/bin/python scripts/farm_ingest.py                       # 100 x 20, 5 workers, SQLite
    /work/venv/bin/python scripts/farm_ingest.py --database postgresql://postgres@127.0.0.1:5432/test
    /work/venv/bin/python scripts/farm_ingest.py --interval 10         # first polls jittered over 10 s

    /work/venv/bin/python scripts/farm_ingest.py --mbsync              # and mbsync (isync) on the same bed, same run

Prints one JSON line with the timings. With ``--mbsync`` the same mailboxes are
then synced by mbsync into Maildirs, W mbsync processes in parallel (each with
its share of the accounts, as mailq's W workers share them), and the JSON gets
``mbsync_s`` and ``mailq_vs_mbsync`` (mailq's launch-to-last-row over mbsync's wall).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import peewee as pw  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from mailq import db  # noqa: E402
from mailq.models import Message, PollRun  # noqa: E402
from tests.testbed import pg  # noqa: E402
from tests.testbed.accounts import write_mailbox_csv  # noqa: E402
from tests.testbed.dovecot import Dovecot  # noqa: E402
from tests.testbed.mailgen import make_messages  # noqa: E402
from tests.testbed.procs import Proc, compile_code  # noqa: E402
from tests.testbed.redisd import RedisServer  # noqa: E402


def _database(url: str | None, root: Path) -> tuple[str, callable]:
    if not url or url == "sqlite":
        return f"sqlite:///{root / 'mailq.db'}", lambda: None
    name, database_url = pg.create_database(url, "mailq_bench")
    return database_url, lambda: pg.drop_database(url, name)


def _count(database_url: str) -> int:
    db.bind(database_url)
    try:
        return Message.select().count()
    finally:
        db.close()


def _runs(database_url: str) -> dict[str, int]:
    """Poll runs by outcome (and error class), to see what a slow run was waiting on."""
    db.bind(database_url)
    try:
        rows = (
            PollRun.select(PollRun.outcome, PollRun.error_class, pw.fn.COUNT(PollRun.id))
            .group_by(PollRun.outcome, PollRun.error_class)
            .tuples()
        )
        return {f"{o}{'/' + e if e else ''}": n for o, e, n in rows}
    finally:
        db.close()


_MBSYNC_ACCOUNT = """IMAPAccount {name}
Host 127.0.0.1
Port {port}
User {name}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore {name}-far
Account {name}

MaildirStore {name}-near
Path {root}/{name}/
Inbox {root}/{name}/INBOX

Channel {name}
Far :{name}-far:
Near :{name}-near:
Patterns INBOX
Sync Pull
Create Near
SyncState *

"""


def mbsync(users: dict[str, str], port: int, workers: int, root: Path, timeout: float) -> dict:
    """mbsync (isync, fsync on by default) pulls every mailbox into Maildirs: W processes, accounts split between them."""
    names = sorted(users)
    procs = []
    for w in range(workers):
        config = root / f"mbsyncrc-{w}"
        config.write_text(
            "".join(_MBSYNC_ACCOUNT.format(name=n, password=users[n], port=port, root=root / "maildirs") for n in names[w::workers])
        )
        for n in names[w::workers]:
            (root / "maildirs" / n).mkdir(parents=True, exist_ok=True)
        procs.append(config)
    started = time.monotonic()
    running = [subprocess.Popen(["mbsync", "-q", "-c", str(c), "-a"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in procs]
    errors = [p.communicate(timeout=timeout)[1] for p in running]
    elapsed = time.monotonic() - started
    if any(p.returncode for p in running):
        raise SystemExit(f"mbsync failed: {b' '.join(errors).decode(errors='replace')[-2000:]}")
    stored = sum(1 for _ in (root / "maildirs").glob("*/INBOX/*/*"))
    return {"mbsync_s": round(elapsed, 2), "mbsync_messages": stored, "mbsync_processes": workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mailboxes", type=int, default=100)
    ap.add_argument("--messages", type=int, default=20, help="per mailbox")
    ap.add_argument("--workers", type=int, default=5)
    ap.add_argument("--interval", type=int, default=60, help="poll interval of every mailbox (first runs jittered over it)")
    ap.add_argument("--database", help="sqlite (default) or a PostgreSQL admin URL to create a throw-away database in")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--mbsync", action="store_true", help="then sync the same mailboxes with mbsync (isync) as the baseline")
    args = ap.parse_args()

    venv_bin = Path(sys.executable).parent
    compile_code(REPO)
    with tempfile.TemporaryDirectory(prefix="mailq-ingest-") as tmp:
        root = Path(tmp)
        dovecot, redis_server = Dovecot(root / "dovecot"), RedisServer(root / "redis")
        dovecot.start()
        redis_server.start()
        database_url, drop_database = _database(args.database, root)
        honcho = None
        try:
            users = {f"bench{i:04d}": f"pw{i}" for i in range(args.mailboxes)}
            dovecot.add_users(users)
            corpus = make_messages(args.messages * 5, seed=42)
            dovecot.deliver_many((u, corpus[(i * 7 + j) % len(corpus)]) for i, u in enumerate(users) for j in range(args.messages))
            dovecot.index()
            total = args.mailboxes * args.messages

            env = {
                **os.environ,
                "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
                "TZ": "UTC",
                "MAILQ_DATABASE_URL": database_url,
                "MAILQ_REDIS_URL": redis_server.url,
                "MAILQ_VAR_DIR": str(root / "var"),
                "MAILQ_STORAGE_URL": f"file://{root / 'var' / 'blobs'}",
                "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
                "MAILQ_LOG_LEVEL": "WARNING",
            }

            def run(*a, **kw):
                return subprocess.run(
                    [str(venv_bin / "mailq"), *a],
                    env=env,
                    cwd=root,
                    check=True,
                    capture_output=True,
                    text=True,
                    **kw,
                )

            run("db", "upgrade")
            csv = write_mailbox_csv(root / "mailboxes.csv", dovecot.imap_port, users, args.interval)
            run("mailbox", "import", str(csv))

            started = time.monotonic()
            argv = [str(venv_bin / "honcho"), "-f", str(REPO / "Procfile"), "-d", str(root), "start", "-c", f"worker={args.workers}"]
            honcho = Proc("honcho", argv, env, root, root).start()
            first = None
            while True:
                n = _count(database_url)
                now = time.monotonic() - started
                if n and first is None:
                    first = now
                if n >= total:
                    break
                if now > args.timeout or not honcho.alive():
                    raise SystemExit(f"gave up after {now:.0f}s with {n}/{total} rows\n" + honcho.log_text(tail=3000))
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            baseline = {}
            if args.mbsync:
                baseline = mbsync(users, dovecot.imap_port, args.workers, root, args.timeout)
                if baseline["mbsync_messages"] != total:
                    raise SystemExit(f"mbsync stored {baseline['mbsync_messages']} of {total} messages")
                baseline["mailq_vs_mbsync"] = round(elapsed / baseline["mbsync_s"], 2)
            print(
                json.dumps(
                    {
                        **baseline,
                        "mailboxes": args.mailboxes,
                        "messages": total,
                        "workers": args.workers,
                        "interval": args.interval,
                        "database": database_url.split(":")[0],
                        "first_row_s": round(first or 0, 2),
                        "last_row_s": round(elapsed, 2),
                        "messages_per_s": round(total / elapsed, 1),
                        "poll_runs": _runs(database_url),
                    }
                )
            )
        finally:
            if honcho is not None:
                honcho.stop(grace=15)
            redis_server.stop()
            dovecot.stop()
            drop_database()


if __name__ == "__main__":
    main()
