"""The console's data-source seam: the ops reads and actions, bound to settings.

Screens never import ``mailq.ops``; they call a source. ``OpsSource`` is the real
one (tests/console_fixtures.FixedSource serves a fixed farm for the UI tests).
Every source call happens in a worker thread, never on the UI thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import peewee
import redis

from mailq import db, ops
from mailq.config import Settings
from mailq.errors import DatabaseError, QueueError
from mailq.imap import Probe
from mailq.models import utcnow
from mailq.text import one_line


class Source(Protocol):
    """What the console reads and does; the signatures mirror ``mailq.ops`` without ``settings``."""

    refresh_interval: float

    def now(self) -> datetime: ...
    def session(self) -> contextlib.AbstractContextManager[None]: ...
    def overview(self) -> ops.Overview: ...
    def queue_stats(self) -> list[ops.QueueStats]: ...
    def workers(self) -> list[ops.WorkerInfo]: ...
    def failed_jobs(self, offset: int = 0, limit: int = 100, search: str | None = None) -> tuple[list[ops.FailedJob], int]: ...
    def failed_job(self, job_id: str) -> ops.FailedJob: ...
    def requeue_failed(self, job_ids: list[str]) -> int: ...
    def requeue_all_failed(self) -> int: ...
    def delete_failed(self, job_ids: list[str]) -> int: ...
    def mailbox_rows(
        self, offset: int = 0, limit: int = 200, text: str | None = None, state: str | None = None
    ) -> tuple[list[ops.MailboxRow], int]: ...
    def mailbox_detail(self, mailbox_id: int) -> tuple[dict, list[ops.PollRunRow]]: ...
    def scheduled_polls(self, offset: int = 0, limit: int = 500) -> tuple[list[ops.ScheduledPoll], int]: ...
    def schedule_diff(self) -> ops.ScheduleDiff: ...
    def resync(self) -> ops.ReconcileReport: ...
    def poll_now(self, mailbox_ids: list[int]) -> list[str]: ...
    def pause(self, mailbox_id: int) -> None: ...
    def resume(self, mailbox_id: int) -> None: ...
    def test_login(self, mailbox_id: int) -> Probe: ...
    def messages(
        self, offset: int = 0, limit: int = 200, mailbox_id: int | None = None, text: str | None = None
    ) -> tuple[list[ops.MessageRow], int]: ...
    def message_detail(self, message_id: int) -> ops.MessageDetail: ...


def _prefixed(prefix: str, exc: BaseException, word: str) -> str:
    text = one_line(exc, 300) or type(exc).__name__
    return text if word in text.lower() else f"{prefix}: {text}"


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(what is down, one line) for the banner: 'redis', 'database' or 'error'."""
    if isinstance(exc, (QueueError, redis.exceptions.RedisError)):
        return "redis", _prefixed("Redis unreachable", exc, "redis")
    if isinstance(exc, (DatabaseError, peewee.PeeweeException)):
        return "database", _prefixed("Database unavailable", exc, "database")
    return "error", f"{type(exc).__name__}: {one_line(exc, 300)}"


class OpsSource:
    """The real farm through ``mailq.ops``."""

    def __init__(self, settings: Settings, refresh_interval: float | None = None):
        self.settings = settings
        self.refresh_interval = refresh_interval if refresh_interval is not None else settings.console_refresh

    def now(self) -> datetime:
        return utcnow()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """One database connection per refresh or action, closed after.

        Each worker runs in a fresh thread and peewee's connections are per thread:
        without closing, every 2 s refresh would leave a connection behind.
        """
        try:
            yield
        finally:  # this thread's connection only (peewee keeps one per thread); a no-op if none was opened
            if db.database.obj is not None:
                with contextlib.suppress(Exception):
                    db.database.close()

    def overview(self) -> ops.Overview:
        return ops.overview(self.settings)

    def queue_stats(self) -> list[ops.QueueStats]:
        return ops.queue_stats(self.settings)

    def workers(self) -> list[ops.WorkerInfo]:
        return ops.workers(self.settings)

    def failed_jobs(self, offset: int = 0, limit: int = 100, search: str | None = None) -> tuple[list[ops.FailedJob], int]:
        return ops.failed_jobs(self.settings, offset=offset, limit=limit, search=search)

    def failed_job(self, job_id: str) -> ops.FailedJob:
        return ops.failed_job(self.settings, job_id)

    def requeue_failed(self, job_ids: list[str]) -> int:
        return ops.requeue_failed(self.settings, job_ids)

    def requeue_all_failed(self) -> int:
        return ops.requeue_all_failed(self.settings)

    def delete_failed(self, job_ids: list[str]) -> int:
        return ops.delete_failed(self.settings, job_ids)

    def mailbox_rows(
        self, offset: int = 0, limit: int = 200, text: str | None = None, state: str | None = None
    ) -> tuple[list[ops.MailboxRow], int]:
        return ops.mailbox_rows(self.settings, offset=offset, limit=limit, text=text, state=state)

    def mailbox_detail(self, mailbox_id: int) -> tuple[dict, list[ops.PollRunRow]]:
        return ops.mailbox_detail(self.settings, mailbox_id)

    def scheduled_polls(self, offset: int = 0, limit: int = 500) -> tuple[list[ops.ScheduledPoll], int]:
        return ops.scheduled_polls(self.settings, offset=offset, limit=limit)

    def schedule_diff(self) -> ops.ScheduleDiff:
        return ops.schedule_diff(self.settings)

    def resync(self) -> ops.ReconcileReport:
        return ops.resync(self.settings)

    def poll_now(self, mailbox_ids: list[int]) -> list[str]:
        return ops.poll_now(self.settings, mailbox_ids)

    def pause(self, mailbox_id: int) -> None:
        ops.pause(self.settings, mailbox_id)

    def resume(self, mailbox_id: int) -> None:
        ops.resume(self.settings, mailbox_id)

    def test_login(self, mailbox_id: int) -> Probe:
        return ops.test_login(self.settings, mailbox_id)

    def messages(
        self, offset: int = 0, limit: int = 200, mailbox_id: int | None = None, text: str | None = None
    ) -> tuple[list[ops.MessageRow], int]:
        return ops.recent_messages(self.settings, offset=offset, limit=limit, mailbox_id=mailbox_id, text=text)

    def message_detail(self, message_id: int) -> ops.MessageDetail:
        return ops.message_detail(self.settings, message_id)
