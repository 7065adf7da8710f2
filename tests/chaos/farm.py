"""A private farm: redis-server, Dovecot, a database, a scheduler and W workers, all under one root.

Nothing here touches the machine's Redis on 6379 or any shared database: Redis
and Dovecot listen on free loopback ports, SQLite lives under the root, and for
PostgreSQL a database of its own is created and dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from mailq import config, db
from mailq.models import Mailbox
from tests.chaos.hosts import Host
from tests.testbed import pg
from tests.testbed.accounts import write_mailbox_csv
from tests.testbed.dovecot import Dovecot
from tests.testbed.procs import Proc, Supervisor, mailq_argv
from tests.testbed.redisd import RedisServer
from tests.testbed.s3d import S3Server

PG_ADMIN_DSN = os.environ.get("MAILQ_CHAOS_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Admin connection used to create and drop the farm's own PostgreSQL database."""

CHILD_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV")


class FarmError(RuntimeError):
    """Raised when the farm cannot be set up (a CLI step failed, a service did not start)."""


class Farm:
    """Everything one scenario runs on; use as a context manager so every child is gone afterwards."""

    def __init__(self, root: Path, db_kind: str = "sqlite", interval: int = 2, settings_env: dict | None = None, storage: str = "file"):
        if db_kind not in ("sqlite", "postgresql"):
            raise ValueError(f"db_kind must be sqlite or postgresql, got {db_kind!r}")
        if storage not in ("file", "s3"):
            raise ValueError(f"storage must be file or s3, got {storage!r}")
        self.root = Path(root).absolute()
        self.db_kind = db_kind
        self.interval = interval
        self.extra_env = dict(settings_env or {})
        self.redis = RedisServer(self.root / "redis")
        self.dovecot = Dovecot(self.root / "dovecot")
        self.supervisor = Supervisor()
        self.passwords: dict[str, str] = {}  # IMAP user -> current password on the server
        self.mailbox_ids: dict[str, int] = {}  # IMAP user -> mailbox id
        self.pg_name: str | None = None
        self.settings: config.Settings | None = None
        self.env: dict[str, str] = {}
        self.schedulers: list[Proc] = []
        self.workers: list[Proc] = []
        self.hosts: list = []  # tests.chaos.hosts.Host, for the multi-host scenarios
        self.s3 = S3Server(self.root / "s3") if storage == "s3" else None
        self._saved_env: dict[str, str | None] = {}
        self.idlers: list[Proc] = []

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> Farm:
        try:
            self.start_services()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start_services(self) -> None:
        (self.root / "var").mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.dovecot.start()
        aws_env = self._start_s3()
        database_url = self._create_database()
        env = {
            "MAILQ_VAR_DIR": str(self.root / "var"),
            "MAILQ_DATABASE_URL": database_url,
            "MAILQ_STORAGE_URL": self.s3.url("farm") if self.s3 else f"file://{self.root / 'var' / 'blobs'}",
            "MAILQ_REDIS_URL": self.redis.url,
            "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
            "MAILQ_POLL_INTERVAL": str(self.interval),
            "MAILQ_CONNECT_TIMEOUT": "3",
            "MAILQ_READ_TIMEOUT": "10",
            "MAILQ_SCHEDULER_INTERVAL": "0.5",
            "MAILQ_RECONCILE_INTERVAL": "3",
            "MAILQ_LOCK_TTL": "10",
            "MAILQ_BACKOFF_BASE": "1",
            "MAILQ_BACKOFF_MAX": "4",
            "MAILQ_JOB_TIMEOUT": "60",  # also bounds how long a lost claim can hold a mailbox (see docs/chaos.md)
            "MAILQ_POLL_BUDGET_SECONDS": "10",
            "MAILQ_POLL_GROUP_SIZE": "3",  # any pass with more than 3 due polls makes group jobs: the faults hit them too
        }
        env.update(self.extra_env)
        self.settings = config.load(env, env_file=None)
        base = {k: os.environ[k] for k in CHILD_BASE_ENV if k in os.environ}
        self.env = {**base, "TZ": "UTC", "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **aws_env, **self.settings.as_env()}
        self.cli("db", "upgrade")
        db.bind(self.settings.database_url)
        self.supervisor.start()

    def close(self) -> None:
        """Stop every child process and service; drop the PostgreSQL database. Safe to call twice."""
        errors = []
        for step in (self.supervisor.stop_all, db.close, self.redis.stop, self.dovecot.stop, self._drop_database, self._stop_s3):
            try:
                step()
            except Exception as exc:  # keep tearing down; report the first problem at the end
                errors.append(exc)
        if errors:
            print(f"chaos: teardown problem: {errors[0]!r}", file=sys.stderr)

    def _start_s3(self) -> dict[str, str]:
        """The S3 server, and its standard AWS environment for the children and for this process (the verifier reads blobs)."""
        if self.s3 is None:
            return {}
        self.s3.start()
        env = self.s3.env()
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        return env

    def _stop_s3(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def _create_database(self) -> str:
        if self.db_kind == "sqlite":
            return f"sqlite:///{self.root / 'var' / 'mailq.db'}"
        self.pg_name, url = pg.create_database(PG_ADMIN_DSN, "mailq_chaos")
        return url

    def _drop_database(self) -> None:
        if self.pg_name:
            pg.drop_database(PG_ADMIN_DSN, self.pg_name)
            self.pg_name = None

    # -- the CLI and the processes --------------------------------------

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run `mailq ARGS` as a real process with the farm's settings."""
        proc = subprocess.run(
            mailq_argv(*args),
            env=self.env,
            cwd=self.root,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise FarmError(f"`mailq {' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return proc

    def add_mailboxes(self, count: int, prefix: str = "box", interval: int | None = None) -> list[str]:
        """Create `count` IMAP users with random passwords and import them with `mailq mailbox import`."""
        start = len(self.passwords)
        users = {f"{prefix}{start + i:04d}": f"chaos-{secrets.token_hex(10)}" for i in range(count)}
        self.dovecot.add_users(users)
        self.passwords.update(users)
        path = write_mailbox_csv(self.root / f"import-{start}.csv", self.dovecot.imap_port, users, interval or self.interval)
        try:
            self.cli("mailbox", "import", str(path))
        finally:
            path.unlink(missing_ok=True)  # the CSV holds passwords: gone as soon as imported
        db.close()
        for m in Mailbox.select(Mailbox.id, Mailbox.name).where(Mailbox.name.in_(list(users))):
            self.mailbox_ids[m.name] = m.id
        return list(users)

    def _start(self, kind: str, group: list[Proc]) -> Proc:
        """A supervised `mailq scheduler` or `mailq worker`, the same command a production unit runs."""
        p = self.supervisor.add(Proc(f"{kind}-{len(group) + 1}", mailq_argv(kind), self.env, self.root / "logs", self.root))
        group.append(p)
        return p.start()

    def start_scheduler(self) -> Proc:
        return self._start("scheduler", self.schedulers)

    def start_worker(self) -> Proc:
        return self._start("worker", self.workers)

    def start_idler(self) -> Proc:
        """`mailq idler` with a 5 s lease TTL, so a killed idler's mailboxes move within the scenario."""
        p = self.supervisor.add(
            Proc(
                f"idler-{len(self.idlers) + 1}",
                mailq_argv("idler"),
                {**self.env, "MAILQ_IDLER_LEASE_TTL": "5"},
                self.root / "logs",
                self.root,
            )
        )
        self.idlers.append(p)
        return p.start()

    def start_farm(self, workers: int, schedulers: int = 1, idlers: int = 0) -> None:
        for _ in range(schedulers):
            self.start_scheduler()
        for _ in range(workers):
            self.start_worker()
        for _ in range(idlers):
            self.start_idler()

    def start_hosts(self, count: int, workers: int) -> list:
        """`count` simulated hosts (tests/chaos/hosts.py), each with a scheduler and `workers` workers."""
        for i in range(count):
            host = Host(self, f"host-{chr(ord('a') + i)}", workers)
            self.hosts.append(host)
            host.start()
        return self.hosts

    def logs(self) -> str:
        """Everything the farm's processes wrote to stdout/stderr so far."""
        return "".join(p.log_text() for p in self.supervisor.processes)
