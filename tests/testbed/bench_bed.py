"""The benchmark's private bed: Dovecot, Redis and mailq processes in one temporary root, and read-only probes.

Built on the test bed (tests/testbed: Dovecot, redis-server, processes, waiting,
accounts); scripts/bench drives it, phase by phase (bench_phases.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from cryptography.fernet import Fernet
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from mailq import config, db, migrations
from mailq.keys import SCHEDULED, SCHEDULER_ALIVE, SCHEDULER_RECONCILED, mailbox_of_entry
from mailq.queues import QUEUE_NAMES
from tests.testbed.accounts import password_for, tagged, user_name, write_mailbox_csv
from tests.testbed.dovecot import Dovecot
from tests.testbed.mailgen import make_messages
from tests.testbed.procs import Proc, compile_code, mailq_argv, stop_all, tree_cpu
from tests.testbed.redisd import RedisServer
from tests.testbed.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent.parent
console = Console(stderr=True)


class BenchError(RuntimeError):
    """Raised when a phase cannot complete (a timeout, a failing command); the message says which."""


class BigDovecot(Dovecot):
    """The test bed's Dovecot with the limits 10,000 concurrent IDLE sessions need (scripts/bench_push.py).

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


@dataclass
class Bed:
    """Dovecot, Redis and mailq's var directories in one temporary root; close() stops it all (the caller removes the root).

    Each var dir (``env(var)``: "farm", "seq", ...) is one mailq installation: its SQLite
    database and blobs inside it, on the bed's Redis. ``settings`` go into every var
    dir's environment (e.g. ``MAILQ_DATABASE_URL`` for PostgreSQL); ``code`` is the mailq
    tree the processes run.
    """

    root: Path
    settings: dict[str, str] = field(default_factory=dict)
    code: Path = REPO
    dovecot_class: type[Dovecot] = Dovecot
    dovecot: Dovecot = field(init=False)
    redis: RedisServer = field(init=False)
    procs: list[Proc] = field(default_factory=list)
    locked_retries: int = 0

    def __post_init__(self) -> None:
        compile_code(self.code)
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.dovecot = self.dovecot_class(self.root / "dovecot")
        self.redis = RedisServer(self.root / "redis")
        self._key = Fernet.generate_key().decode()
        self._envs: dict[str, dict[str, str]] = {}

    def env(self, var: str) -> dict[str, str]:
        """mailq's environment for a var dir: one dict per var dir, so a change to it holds for what runs next."""
        if var not in self._envs:
            var_dir = self.root / var
            self._envs[var] = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", "/tmp"),
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "PYTHONPATH": str(self.code.resolve()),
                "MAILQ_VAR_DIR": str(var_dir),
                "MAILQ_DATABASE_URL": f"sqlite:///{var_dir / 'mailq.db'}",
                "MAILQ_STORAGE_URL": f"file://{var_dir / 'blobs'}",
                "MAILQ_REDIS_URL": self.redis.url,
                "MAILQ_SECRET_KEY": self._key,
                "MAILQ_LOG_LEVEL": "WARNING",
                **self.settings,
            }
        return self._envs[var]

    def mailq(self, var: str, *args: str, timeout: float = 600, attempts: int = 5) -> str:
        """Run one `mailq` command to completion; raises BenchError with its stderr on failure.

        "database is locked" (SQLite, while workers write) is retried and counted
        in `self.locked_retries`: the run goes on, and the report shows it happened.
        """
        for attempt in range(attempts):
            proc = subprocess.run(
                mailq_argv(*args),
                env=self.env(var),
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            if proc.returncode == 0:
                return proc.stdout
            if "database is locked" not in proc.stderr or attempt == attempts - 1:
                break
            self.locked_retries += 1
            console.log(f"[yellow]mailq {args[0]} {args[1] if len(args) > 1 else ''}: database is locked, retrying[/]")
            time.sleep(1)
        raise BenchError(f"mailq {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")

    def spawn(self, name: str, var: str, *args: str, **env: str) -> Proc:
        """A long-running `mailq` process in its own session, output to logs/NAME.log; ``env`` adds to the var dir's."""
        proc = Proc(name, mailq_argv(*args), {**self.env(var), **env}, self.logs, self.root).start()
        self.procs.append(proc)
        return proc

    def open_database(self, var: str):
        """This process on the var dir's settings and database, migrated (for probes and bulk inserts); returns the settings."""
        settings = config.load(self.env(var), env_file=None)
        config.use(settings)
        db.bind(settings.database_url)
        migrations.upgrade()
        return settings

    def sqlite(self, var: str, timeout: float = 10) -> sqlite3.Connection:
        """The var dir's SQLite database, read-only."""
        return sqlite3.connect(f"file:{self.root / var / 'mailq.db'}?mode=ro", uri=True, timeout=timeout)

    def dovecot_pids(self) -> list[int]:
        pid = self.dovecot.master_pid()
        return [pid] if pid is not None else []

    def close(self) -> None:
        stop_all(self.procs)
        self.redis.stop()
        if self.dovecot.running():
            self.dovecot.stop()


def write_csv(path: Path, port: int, first: int, last: int, interval: int) -> Path:
    names = [user_name(i) for i in range(first, last + 1)]
    return write_mailbox_csv(path, port, {name: password_for(name) for name in names}, interval)


def populate(bed: Bed, users: int, mailboxes: int, messages: int) -> int:
    """`users` accounts, the first `mailboxes` with `messages` realistic messages each; returns bytes."""
    bed.dovecot.add_users({user_name(i): password_for(user_name(i)) for i in range(1, users + 1)})
    bed.dovecot.start()
    pool = make_messages(messages, seed=6)
    total = 0
    for i in range(1, mailboxes + 1):
        mail = tagged(user_name(i), pool)
        bed.dovecot.deliver_many((user_name(i), raw) for raw in mail)
        total += sum(len(raw) for raw in mail)
    bed.dovecot.index()
    return total


# -- database and Redis probes (read-only) ---------------------------------------------------


def query(bed: Bed, var: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = bed.sqlite(var)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def epoch(value: str) -> float:
    """A naive-UTC timestamp as stored by peewee in SQLite, as epoch seconds."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def redis_client(bed: Bed):
    return redis.Redis.from_url(bed.redis.url)


def schedule_members(conn) -> list[bytes]:
    return [m for m in conn.zrange(SCHEDULED, 0, -1) if mailbox_of_entry(m.decode()) is not None]


def set_next_runs(conn, when) -> int:
    """Bench trick: move every mailbox's next scheduled run (rq-scheduler ZSET score); `when(i)` -> epoch."""
    members = schedule_members(conn)
    if members:
        conn.zadd(SCHEDULED, {m: when(i) for i, m in enumerate(members)})
    return len(members)


def failed_polls(conn) -> dict[str, int]:
    """Poll jobs in RQ's failed registries (a poll that crashed, e.g. on a database error): job id -> mailbox id."""
    found = {}
    for name in QUEUE_NAMES:
        for job_id in FailedJobRegistry(queue=Queue(name, connection=conn)).get_job_ids():
            parts = job_id.split("-")
            if len(parts) >= 2 and parts[0] == "poll" and parts[1].isdigit():
                found[job_id] = int(parts[1])
    return found


def farm_quiet(conn) -> bool:
    """No poll queued or running on any mailq queue."""
    for name in QUEUE_NAMES:
        q = Queue(name, connection=conn)
        if q.count or StartedJobRegistry(queue=q).count:
            return False
    return True


# -- waiting with a progress bar ----------------------------------------------------------------


def wait_count(label: str, count, total: int, timeout: float) -> float:
    """Poll count() until it reaches total; returns the epoch time it did. BenchError on timeout."""
    columns = [SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        while True:
            done = count()
            progress.update(task, completed=done)
            if done >= total:
                return time.time()
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: only {done} of {total} after {timeout:.0f}s (see the logs)")
            time.sleep(0.02)


def wait_until(predicate, what: str, timeout: float) -> None:
    wait_for(predicate, timeout, what, interval=0.05, error=BenchError)


@dataclass
class Farm:
    """W workers and a scheduler on one var dir of the bed."""

    bed: Bed
    workers: list[Proc]
    scheduler: Proc | None = None
    var: str = "farm"

    @property
    def procs(self) -> list[Proc]:
        return self.workers + ([self.scheduler] if self.scheduler else [])

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.alive()]

    def cpu(self) -> float:
        return tree_cpu(self.pids)

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited with {proc.popen.returncode}: see {proc.log_path}")

    def stop(self) -> None:
        stop_all(self.procs)


def start_farm(bed: Bed, workers: int, var: str = "farm") -> Farm:
    """W `mailq worker` processes, registered; then `mailq scheduler` with every schedule pushed an hour out."""
    conn = redis_client(bed)
    prefix = "" if var == "farm" else f"{var}-"
    farm = Farm(bed, [bed.spawn(f"{prefix}worker-{i}", var, "worker") for i in range(1, workers + 1)], var=var)
    wait_until(lambda: farm.check_alive() or len(Worker.all(connection=conn)) >= workers, "workers to register", 60)
    bed.mailq(var, "schedule", "sync")
    set_next_runs(conn, lambda i: time.time() + 3600)
    conn.delete(SCHEDULER_ALIVE, SCHEDULER_RECONCILED)
    farm.scheduler = bed.spawn(f"{prefix}scheduler", var, "scheduler")
    # Looping and past its start-up reconcile; nothing is due, so nothing runs yet.
    wait_until(lambda: farm.check_alive() or conn.exists(SCHEDULER_ALIVE, SCHEDULER_RECONCILED) == 2, "the scheduler", 60)
    return farm
