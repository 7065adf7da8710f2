"""The farm under test: scheduler and worker subprocesses on the test's settings, always killed.

Imported by the ``test_farm_*`` modules (it holds no tests itself). Every
process starts in its own session, so a SIGKILL of a worker takes its
work-horse along, and teardown kills whole process groups, on failure too.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import peewee as pw
import pytest

from mailq import mailboxes
from mailq.models import Mailbox, Message, PollRun
from tests.testbed.mailgen import make_messages

_calls = itertools.count(os.getpid() * 1000)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


class Farm:
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

    def _start(self, name: str, *args: str) -> Proc:
        log = self.root / f"{name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "mailq", *args],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def scheduler(self, name: str = "scheduler") -> Proc:
        return self._start(name, "scheduler")

    def worker(self, name: str) -> Proc:
        return self._start(name, "worker", "--name", name)

    def rq_worker(self, name: str) -> Proc:
        """Plain ``rq worker`` (not ``mailq worker``) on mailq's queues: it must work the same."""
        log = self.root / f"{name}.log"
        rq = str(Path(sys.executable).parent / "rq")
        popen = subprocess.Popen(
            [
                rq,
                "worker",
                "--with-scheduler",
                "--name",
                name,
                "--url",
                self.settings.redis_url,
                "email-high",
                "email",
                "workflow",
                "default",
            ],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Signal the process and all its descendants (RQ's work-horse runs in its own session)."""
        for pid in [proc.popen.pid, *_descendants(proc.popen.pid)]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        proc.popen.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        leftovers = {pid for proc in self.procs for pid in _descendants(proc.popen.pid)}
        for proc in self.procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group too: a work-horse outliving its worker must not leak
                os.killpg(proc.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.popen.wait(5)
        for pid in leftovers:  # work-horses orphaned by a SIGKILLed worker
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log.read_text(errors='replace')[-3000:]}" for p in self.procs)

    def assert_alive(self) -> None:
        dead = [p.name for p in self.procs if p.popen.poll() is not None]
        assert not dead, f"died: {dead}\n{self.logs()}"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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
