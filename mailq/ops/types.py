"""The read models the CLI and the console render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
    push: str | None = None  # pushed | reconnecting | polled (None: unknown, e.g. Redis down)


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


@dataclass
class MessageRow:
    id: int
    mailbox_id: int
    mailbox_name: str
    date: datetime | None
    from_addr: str | None
    subject: str | None
    size: int
    attachments: int
    dispatch: str  # delivered | pending | none (no hook or webhook configured)


@dataclass
class AttachmentRow:
    id: int
    filename: str | None
    content_type: str
    size: int


@dataclass
class MessageDetail:
    row: MessageRow
    folder: str
    headers: list[tuple[str, str]]  # as decoded from the stored message, in order
    text: str | None  # the text body (or None), cut at ``TEXT_LIMIT``
    text_truncated: bool
    attachments: list[AttachmentRow]
    problem: str | None = None  # why headers/body are missing (not stored, blob missing)
