"""The farm under test: scheduler and worker subprocesses on the test's settings, always killed.

Imported by the ``test_farm_*`` modules (it holds no tests itself). The
processes are the test bed's (tests/testbed/procs.py): each in its own
session, killed with its descendants, on failure too.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

import peewee as pw
import pytest

from mailq import mailboxes, schedule
from mailq.models import Mailbox, Message, PollRun
from mailq.queues import QUEUE_NAMES, connect
from tests.helpers import wait_for
from tests.testbed.mailgen import make_messages
from tests.testbed.procs import Proc, mailq_argv, stop_all

_calls = itertools.count(os.getpid() * 1000)


class Farm:
    """Scheduler and worker processes (tests/testbed/procs.Proc) on the test's settings."""

    def __init__(self, settings, root: Path):
        self.settings = settings
        self.root = root
        self.procs: list[Proc] = []
        self.env = {
            **settings.as_env(),
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "MAILQ_SCHEDULER_INTERVAL": "0.2",
            "MAILQ_LOG_LEVEL": "DEBUG",  # RQ's own loop lines ("cleaning group registries") show only at DEBUG
        }

    def configure(self, **env: object) -> None:
        """Settings for processes started from now on, e.g. ``MAILQ_LOCK_TTL=5``."""
        self.env.update({k: str(v) for k, v in env.items()})

    def _start(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, dict(self.env), self.root, self.root).start()
        self.procs.append(proc)
        return proc

    def scheduler(self, name: str = "scheduler") -> Proc:
        return self._start(name, mailq_argv("scheduler"))

    def worker(self, name: str) -> Proc:
        return self._start(name, mailq_argv("worker", "--name", name))

    def rq_worker(self, name: str) -> Proc:
        """Plain ``rq worker`` (not ``mailq worker``) on mailq's queues: it must work the same."""
        rq = str(Path(sys.executable).parent / "rq")
        return self._start(name, [rq, "worker", "--with-scheduler", "--name", name, "--url", self.settings.redis_url, *QUEUE_NAMES])

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Signal the process and all its descendants (RQ's work-horse runs in its own session)."""
        proc.kill(sig)

    def stop_all(self) -> None:
        stop_all(self.procs, grace=5)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_text(tail=3000)}" for p in self.procs)

    def assert_alive(self) -> None:
        dead = [p.name for p in self.procs if not p.alive()]
        assert not dead, f"died: {dead}\n{self.logs()}"


@pytest.fixture
def farm(settings, tmp_path):
    the_farm = Farm(settings, tmp_path)
    yield the_farm
    the_farm.stop_all()
    print(the_farm.logs())  # pytest shows it only when the test failed


def add_mailboxes(
    settings,
    dovecot,
    prefix: str,
    counts: list[int],
    *,
    interval: int = 1,
    seed: int = 1,
    max_bytes: int = 20_000,
    password: str | None = None,
) -> list[tuple[Mailbox, str, str]]:
    """One Dovecot user and mailbox per count, each with that many messages; (mailbox, user, password).

    User names are unique per call: the session's Dovecot outlives the test (and its other backend).
    """
    prefix = f"{prefix}{next(_calls)}x"
    users = {f"{prefix}{i}": f"pw-{prefix}{i}" for i in range(len(counts))}
    dovecot.add_users(users)
    corpus = make_messages(max(counts + [1]) * 2, seed=seed, max_bytes=max_bytes)
    items = [(user, corpus[(i + j) % len(corpus)]) for i, (user, n) in enumerate(zip(users, counts)) for j in range(n)]
    dovecot.deliver_many(items)
    result = []
    for user, pw_ in users.items():
        spec = mailboxes.validate(
            name=user,
            host="127.0.0.1",
            port=dovecot.imap_port,
            security="plain",
            username=user,
            password=password or pw_,
            interval=interval,
        )
        result.append((mailboxes.save(settings, spec)[0], user, pw_))
    return result


def scheduler_passes(settings) -> int:
    """Passes the live scheduler has made (from its liveness record; 0 before its first)."""
    record, _ = schedule.liveness(connect(settings))
    return int(record["passes"]) if record else 0


def next_scheduler_pass(settings, after: int, timeout: float = 30.0) -> int:
    """Wait for a scheduler pass after pass number ``after``; returns its number."""
    return wait_for(lambda: (n := scheduler_passes(settings)) > after and n, timeout, "the next scheduler pass")


def stored(mailbox_ids: list[int] | None = None) -> int:
    query = Message.select()
    if mailbox_ids is not None:
        query = query.where(Message.mailbox.in_(mailbox_ids))
    return query.count()


def duplicates() -> list[tuple]:
    """(mailbox, folder, uid) or (mailbox, message sha) stored more than once."""
    by_uid = list(
        Message.select(Message.mailbox, Message.folder, Message.uid, pw.fn.COUNT(Message.id))
        .group_by(Message.mailbox, Message.folder, Message.uid)
        .having(pw.fn.COUNT(Message.id) > 1)
        .tuples()
    )
    return by_uid


def runs_of(mailbox_id: int) -> list[PollRun]:
    return list(PollRun.select().where(PollRun.mailbox == mailbox_id).order_by(PollRun.started_at))


def overlapping_runs(mailbox_ids: list[int]) -> list[tuple[int, int, int]]:
    """Pairs of poll runs of one mailbox whose [started, finished] overlap."""
    found = []
    for mid in mailbox_ids:
        runs = [r for r in runs_of(mid) if r.outcome != "skipped"]
        for a, b in zip(runs, runs[1:]):
            if a.finished_at is None or b.started_at < a.finished_at:
                found.append((mid, a.id, b.id))
    return found
