"""First ingest into the S3 store beside the local store, same mailboxes, same run.

A private Dovecot (N mailboxes x M realistic messages), redis-server and S3 API
server (moto, standing in for AWS or MinIO on loopback), then for each store in
turn a fresh SQLite database, W real ``mailq worker`` processes and
``mailq poll --all --wait``: wall time until every message is stored.
moto answers from memory on the same cores, so this measures mailq's S3 path
(signing, HTTP, concurrent puts, the wait before each commit), not a network's
latency. Run: python scripts/bench_s3.py [--mailboxes 20] [--messages 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the dev harness lives in tests/
from tests.testbed.dovecot import Dovecot  # noqa: E402
from tests.testbed.mailgen import make_messages  # noqa: E402
from tests.testbed.redisd import RedisServer  # noqa: E402
from tests.testbed.s3d import S3Server  # noqa: E402


def first_ingest(root: Path, label: str, storage_url: str, extra_env: dict, csv: Path, workers: int, total: int) -> dict:
    """One store: fresh database, W workers, every mailbox polled once; seconds until `total` rows."""
    var = root / f"var-{label}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONPATH": str(REPO),
        "MAILQ_VAR_DIR": str(var),
        "MAILQ_DATABASE_URL": f"sqlite:///{var / 'mailq.db'}",
        "MAILQ_STORAGE_URL": storage_url,
        "MAILQ_REDIS_URL": extra_env.pop("MAILQ_REDIS_URL"),
        "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
        "MAILQ_LOG_LEVEL": "WARNING",
        **extra_env,
    }

    def mailq(*args: str, timeout: float = 600) -> str:
        proc = subprocess.run([sys.executable, "-m", "mailq", *args], env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"mailq {' '.join(args)} failed: {proc.stderr.strip()[-800:]}")
        return proc.stdout

    var.mkdir(parents=True)
    mailq("db", "upgrade")
    mailq("mailbox", "import", str(csv))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mailq", "worker", "--name", f"{label}-{i}"],
            env=env,
            cwd=root,
            stdout=open(root / f"{label}-worker-{i}.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in range(workers)
    ]
    try:
        time.sleep(2)  # workers up (a start costs the same for both stores, and is not ingest)
        started = time.perf_counter()
        mailq("poll", "--all", "--wait", "--timeout", "600")
        deadline = time.monotonic() + 600
        while _rows(var) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
    return {"store": label, "rows": _rows(var), "s": elapsed}


def _rows(var: Path) -> int:
    conn = sqlite3.connect(f"file:{var / 'mailq.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM message").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=20)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="mailq-bench-s3-"))
    dovecot, redis, s3 = Dovecot(root / "dovecot"), RedisServer(root / "redis"), S3Server(root / "s3")
    try:
        users = {f"user{i:04d}": f"pw-{i}" for i in range(1, args.mailboxes + 1)}
        dovecot.add_users(users)
        dovecot.start()
        redis.start()
        s3.start()
        pool = make_messages(args.messages, seed=6)
        size = 0
        for user in users:
            tag = f".{user}@mailgen.example>".encode()
            mail = [raw.replace(b"@mailgen.example>", tag, 1) for raw in pool]
            dovecot.deliver_many((user, raw) for raw in mail)
            size += sum(map(len, mail))
        dovecot.index()
        csv = root / "boxes.csv"
        csv.write_text(
            "name,host,port,security,username,password,folders,interval,priority\n"
            + "".join(f"{u},127.0.0.1,{dovecot.imap_port},plain,{u},{p},INBOX,3600,normal\n" for u, p in users.items())
        )
        total = args.mailboxes * args.messages
        results = []
        for label, url, extra in (
            ("local", f"file://{root / 'var-local' / 'blobs'}", {}),
            ("s3", s3.url("bench"), s3.env()),
        ):
            import redis as redis_lib

            redis_lib.Redis.from_url(redis.url).flushdb()
            results.append(first_ingest(root, label, url, {"MAILQ_REDIS_URL": redis.url, **extra}, csv, args.workers, total))
            console.log(f"{label}: {results[-1]['s']:.2f} s")
    finally:
        s3.stop()
        redis.stop()
        if dovecot.running():
            dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    table = Table(title=f"first ingest: {args.mailboxes} x {args.messages} messages ({size / 1e6:.1f} MB), {args.workers} workers")
    for col in ("store", "rows", "seconds", "msgs/s", "MB/s", "vs local"):
        table.add_column(col, justify="right")
    base = results[0]["s"]
    for r in results:
        table.add_row(
            r["store"], str(r["rows"]), f"{r['s']:.2f}", f"{r['rows'] / r['s']:.0f}", f"{size / r['s'] / 1e6:.1f}", f"{r['s'] / base:.2f}x"
        )
    console.print(table)


if __name__ == "__main__":
    main()
