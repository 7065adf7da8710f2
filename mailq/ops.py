"""The operations layer: every read model and action the CLI and the console share.

Neither the CLI nor the console touches Redis keys or rq internals directly;
they call these functions. Lists that can be huge (mailboxes, failed jobs) are
windowed with ``offset``/``limit`` so a console refresh stays cheap at 10,000
mailboxes and 100,000 failed jobs.

STATUS: interface agreed between the farm (issue 4) and the console (issue 5);
the farm fills in the bodies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .config import Settings


@dataclass
class QueueStats:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    finished: int


@dataclass
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    state: str  # idle | busy | suspended | ...
    queues: list[str]
    current_job_id: str | None
    current_mailbox_id: int | None
    current_mailbox_name: str | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    stale: bool  # heartbeat older than the worker's TTL: probably dead
    successes: int
    failures: int


@dataclass
class FailedJob:
    id: str
    queue: str
    function: str
    mailbox_id: int | None
    mailbox_name: str | None
    error_line: str
    failed_at: datetime | None
    traceback: str | None = None  # filled by failed_job(), not by the list


@dataclass
class ScheduledPoll:
    job_id: str
    mailbox_id: int | None
    mailbox_name: str | None
    interval: int | None
    next_run_at: datetime | None


@dataclass
class ScheduleDiff:
    missing: list[int] = field(default_factory=list)  # enabled mailboxes without a recurring poll
    stale: list[str] = field(default_factory=list)  # recurring polls whose mailbox is gone or disabled (job ids)
    changed: list[int] = field(default_factory=list)  # interval or queue differs from the database


@dataclass
class ReconcileReport:
    added: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class MailboxRow:
    id: int
    name: str
    host: str
    state: str  # ok | failing | auth_error | paused
    last_poll_at: datetime | None
    last_success_at: datetime | None
    next_run_at: datetime | None
    new_today: int
    consecutive_failures: int
    last_error: str | None


@dataclass
class PollRunRow:
    id: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    new_count: int
    skipped_count: int
    error_class: str | None
    error_text: str | None


@dataclass
class Overview:
    states: dict[str, int]  # ok / failing / auth_error / paused -> count
    queues: list[QueueStats]
    workers_online: int
    workers_busy: int
    workers_stale: int
    failed_total: int
    ingested_last_hour: int
    ingest_per_minute: list[int]  # 60 values, oldest first
    scheduler_alive: bool
    scheduler_last_reconcile_at: datetime | None
    redis_error: str | None = None  # set when Redis is unreachable (the rest is then partial)
    database_error: str | None = None


def _todo(*_: Any, **__: Any):
    raise NotImplementedError("filled in by the farm (issue 4)")


overview = _todo  # (settings) -> Overview
queue_stats = _todo  # (settings) -> list[QueueStats]
workers = _todo  # (settings) -> list[WorkerInfo]
failed_jobs = _todo  # (settings, offset=0, limit=100, search: str | None = None) -> tuple[list[FailedJob], int]
failed_job = _todo  # (settings, job_id) -> FailedJob (with traceback); NotFoundError if absent
requeue_failed = _todo  # (settings, job_ids: list[str]) -> int
requeue_all_failed = _todo  # (settings) -> int
delete_failed = _todo  # (settings, job_ids: list[str]) -> int
mailbox_rows = _todo  # (settings, offset=0, limit=200, text: str | None = None, state: str | None = None) -> tuple[list[MailboxRow], int]
mailbox_detail = _todo  # (settings, mailbox_id) -> tuple[dict, list[PollRunRow]]
scheduled_polls = _todo  # (settings, offset=0, limit=500) -> tuple[list[ScheduledPoll], int]
schedule_diff = _todo  # (settings) -> ScheduleDiff
resync = _todo  # (settings) -> ReconcileReport
poll_now = _todo  # (settings, mailbox_ids: list[int], wait: bool = False, timeout: float = 300) -> list[str]  (job ids)
pause = _todo  # (settings, mailbox_id) -> None  (DB + schedule removed)
resume = _todo  # (settings, mailbox_id) -> None (DB + schedule added)
test_login = _todo  # (settings, mailbox_id) -> imap.Probe  (raises ImapError subclasses)
status = _todo  # (settings) -> dict with keys mailboxes, queues, workers, failed (the `mailq status --json` shape)
