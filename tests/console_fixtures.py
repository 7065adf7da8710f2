"""A small fixed farm with a fixed clock, for the console's UI and snapshot tests (no Redis, no database).

It speaks the real vocabulary (job paths from mailq.keys, ``mbx-N`` schedule
entries, ``imap.Probe``) so the screens are tested against what a farm shows.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from mailq import keys, ops
from mailq.errors import NotFoundError
from mailq.imap import Probe

FIXED_NOW = datetime(2026, 11, 28, 12, 0, 0)
HOSTILE = "subject [bold red]x[/] \x1b[31mred\x1b[0m"
"""Mail-derived text that must show literally (snapshot and literal-text tests)."""


def _fixed_mailboxes(now: datetime) -> list[ops.MailboxRow]:
    s = lambda n: now - timedelta(seconds=n)  # noqa: E731
    rows = [
        ops.MailboxRow(1, "support@acme.example", "imap.acme.example", "ok", s(12), s(12), now + timedelta(seconds=48), 37, 0, None),
        ops.MailboxRow(2, "billing@acme.example", "imap.acme.example", "ok", s(31), s(31), now + timedelta(seconds=29), 5, 0, None),
        ops.MailboxRow(
            3,
            "orders@shop.example",
            "mail.shop.example",
            "failing",
            s(95),
            s(1900),
            now + timedelta(seconds=240),
            0,
            3,
            "connection: [Errno 111] Connection refused",
        ),
        ops.MailboxRow(
            4,
            "alerts@ops.example",
            "imap.ops.example",
            "auth_error",
            s(4000),
            s(90000),
            None,
            0,
            1,
            "auth: [AUTHENTICATIONFAILED] Authentication failed.",
        ),
        ops.MailboxRow(5, "hr@acme.example", "imap.acme.example", "paused", s(7200), s(7200), None, 2, 0, None),
        ops.MailboxRow(6, "press@news.example", "imap.news.example", "ok", s(3), s(3), now + timedelta(seconds=57), 112, 0, None),
        ops.MailboxRow(
            7,
            "abuse@hostile.example",
            "imap.hostile.example",
            "failing",
            s(20),
            s(600),
            now + timedelta(seconds=60),
            0,
            2,
            f"parse: {HOSTILE}",
        ),
        ops.MailboxRow(8, "jobs@acme.example", "imap.acme.example", "ok", s(44), s(44), now + timedelta(seconds=16), 9, 0, None),
    ]
    return rows


class FixedSource:
    """A small fixed farm with a fixed clock; actions change it in memory and are recorded in ``calls``."""

    def __init__(self, now: datetime = FIXED_NOW, refresh_interval: float = 3600.0):
        self._now = now
        self.refresh_interval = refresh_interval
        self.calls: list[tuple[str, Any]] = []
        self.fail: BaseException | None = None  # raise this from every read (banner tests)
        self.mailboxes = _fixed_mailboxes(now)
        s = lambda n: now - timedelta(seconds=n)  # noqa: E731
        self.failed = [
            ops.FailedJob(
                f"poll-{i}-{i:04x}",
                "email",
                keys.POLL_JOB,
                i % 8 + 1,
                self.mailboxes[i % 8].name,
                "TimeoutError: IMAP read timed out after 60s",
                s(60 * i + 5),
            )
            for i in range(1, 6)
        ]
        self.failed.append(
            ops.FailedJob("dispatch-991", "workflow", keys.DISPATCH_JOB, 7, "abuse@hostile.example", f"ValueError: {HOSTILE}", s(4000))
        )

    def _read(self) -> None:
        if self.fail is not None:
            raise self.fail

    def now(self) -> datetime:
        return self._now

    def session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _states(self) -> dict[str, int]:
        states = {"ok": 0, "failing": 0, "auth_error": 0, "paused": 0}
        for row in self.mailboxes:
            states[row.state] = states.get(row.state, 0) + 1
        return states

    def overview(self) -> ops.Overview:
        self._read()
        per_minute = [(i * 7 + 3) % 11 + (i // 10) for i in range(60)]
        return ops.Overview(
            self._states(),
            self.queue_stats(),
            workers_online=3,
            workers_busy=2,
            workers_stale=1,
            failed_total=len(self.failed),
            ingested_last_hour=sum(per_minute),
            ingest_per_minute=per_minute,
            scheduler_alive=True,
            scheduler_last_reconcile_at=self._now - timedelta(seconds=23),
        )

    def queue_stats(self) -> list[ops.QueueStats]:
        self._read()
        failed = {q: sum(1 for j in self.failed if j.queue == q) for q in ("email-high", "email", "workflow", "default")}
        return [
            ops.QueueStats("email-high", 0, 1, 0, 0, failed["email-high"], 14),
            ops.QueueStats("email", 4, 2, 0, 0, failed["email"], 311),
            ops.QueueStats("workflow", 12, 1, 0, 3, failed["workflow"], 1290),
            ops.QueueStats("default", 0, 0, 0, 0, failed["default"], 0),
        ]

    def workers(self) -> list[ops.WorkerInfo]:
        self._read()
        s = lambda n: self._now - timedelta(seconds=n)  # noqa: E731
        return [
            ops.WorkerInfo(
                "worker-1",
                "farm-a",
                4101,
                "busy",
                ["email-high", "email", "workflow", "default"],
                "poll-6",
                6,
                "press@news.example",
                s(2),
                2.0,
                False,
                1204,
                3,
            ),
            ops.WorkerInfo(
                "worker-2",
                "farm-a",
                4102,
                "busy",
                ["email-high", "email", "workflow", "default"],
                "dispatch-7713",
                1,
                "support@acme.example",
                s(4),
                4.0,
                False,
                980,
                0,
            ),
            ops.WorkerInfo(
                "worker-3",
                "farm-b",
                877,
                "idle",
                ["email-high", "email", "workflow", "default"],
                None,
                None,
                None,
                s(412),
                412.0,
                True,
                55,
                2,
            ),
        ]

    def failed_jobs(self, offset: int = 0, limit: int = 100, search: str | None = None) -> tuple[list[ops.FailedJob], int]:
        self._read()
        rows = [j for j in self.failed if not search or search.lower() in (j.id + " " + j.error_line).lower()]
        return rows[offset : offset + limit], len(rows)

    def failed_job(self, job_id: str) -> ops.FailedJob:
        self._read()
        for job in self.failed:
            if job.id == job_id:
                return replace(
                    job,
                    traceback="Traceback (most recent call last):\n"
                    '  File "mailq/jobs.py", line 88, in poll_mailbox\n    sync.poll(mailbox)\n'
                    f"{job.error_line}\n",
                )
        raise NotFoundError(f"no failed job {job_id}")

    def _drop(self, job_ids: list[str]) -> int:
        before = len(self.failed)
        self.failed = [j for j in self.failed if j.id not in set(job_ids)]
        return before - len(self.failed)

    def requeue_failed(self, job_ids: list[str]) -> int:
        self.calls.append(("requeue_failed", list(job_ids)))
        return self._drop(job_ids)

    def requeue_all_failed(self) -> int:
        self.calls.append(("requeue_all_failed", None))
        return self._drop([j.id for j in self.failed])

    def delete_failed(self, job_ids: list[str]) -> int:
        self.calls.append(("delete_failed", list(job_ids)))
        return self._drop(job_ids)

    def mailbox_rows(
        self, offset: int = 0, limit: int = 200, text: str | None = None, state: str | None = None
    ) -> tuple[list[ops.MailboxRow], int]:
        self._read()
        rows = [
            r for r in self.mailboxes if (not text or text.lower() in (r.name + " " + r.host).lower()) and (not state or r.state == state)
        ]
        return rows[offset : offset + limit], len(rows)

    def _mailbox(self, mailbox_id: int) -> ops.MailboxRow:
        for row in self.mailboxes:
            if row.id == mailbox_id:
                return row
        raise NotFoundError(f"no mailbox {mailbox_id}")

    def mailbox_detail(self, mailbox_id: int) -> tuple[dict, list[ops.PollRunRow]]:
        self._read()
        row = self._mailbox(mailbox_id)
        info = {
            "id": row.id,
            "name": row.name,
            "host": row.host,
            "port": 993,
            "security": "ssl",
            "username": row.name,
            "folders": ["INBOX"],
            "interval": 60,
            "priority": "normal",
            "paused": row.state == "paused",
            "state": row.state,
            "consecutive_failures": row.consecutive_failures,
            "last_error": row.last_error,
        }
        runs = []
        for i in range(6):
            started = self._now - timedelta(minutes=i, seconds=mailbox_id)
            failed = row.consecutive_failures > i
            runs.append(
                ops.PollRunRow(
                    100 - i,
                    started,
                    started + timedelta(seconds=2),
                    "error" if failed else "ok",
                    0 if failed else i % 3,
                    0,
                    "connection" if failed else None,
                    row.last_error if failed else None,
                )
            )
        return info, runs

    def scheduled_polls(self, offset: int = 0, limit: int = 500) -> tuple[list[ops.ScheduledPoll], int]:
        self._read()
        polls = [
            ops.ScheduledPoll(keys.schedule_entry(r.id), r.id, r.name, 60, r.next_run_at)
            for r in self.mailboxes
            if r.state not in ("paused", "auth_error") and r.id != 8
        ]
        polls.append(ops.ScheduledPoll(keys.schedule_entry(42), 42, None, 300, self._now + timedelta(seconds=100)))
        return polls[offset : offset + limit], len(polls)

    def schedule_diff(self) -> ops.ScheduleDiff:
        self._read()
        return ops.ScheduleDiff(missing=[8], stale=[keys.schedule_entry(42)], changed=[])

    def resync(self) -> ops.ReconcileReport:
        self.calls.append(("resync", None))
        return ops.ReconcileReport(added=[8], removed=[keys.schedule_entry(42)], updated=[], unchanged=5)

    def poll_now(self, mailbox_ids: list[int]) -> list[str]:
        self.calls.append(("poll_now", list(mailbox_ids)))
        return [f"poll-{i}" for i in mailbox_ids]

    def pause(self, mailbox_id: int) -> None:
        self.calls.append(("pause", mailbox_id))
        row = self._mailbox(mailbox_id)
        row.state, row.next_run_at = "paused", None

    def resume(self, mailbox_id: int) -> None:
        self.calls.append(("resume", mailbox_id))
        row = self._mailbox(mailbox_id)
        row.state, row.consecutive_failures = "ok", 0

    def test_login(self, mailbox_id: int) -> Any:
        self.calls.append(("test_login", mailbox_id))
        return Probe(capabilities=["IMAP4rev1", "IDLE", "CONDSTORE"], folders=["INBOX"])

    def _messages(self) -> list[ops.MessageRow]:
        subjects = ["Invoice 2026-113", "Re: order #5521 missing", HOSTILE, "Weekly report", "Password reset", "(no subject)"]
        senders = ["Ann <ann@example.com>", "shop@shop.example", "\x1b[5m[blink]evil[/blink] <x@hostile.example>", "ops@ops.example"]
        rows = []
        for i in range(12, 0, -1):
            box = self.mailboxes[i % 3]
            rows.append(
                ops.MessageRow(
                    100 + i,
                    box.id,
                    box.name,
                    self._now - timedelta(minutes=7 * (12 - i), seconds=i),
                    senders[i % len(senders)],
                    subjects[i % len(subjects)],
                    1200 * i + 345,
                    i % 3,
                    ("delivered", "pending", "delivered")[i % 3],
                )
            )
        return rows

    def messages(
        self, offset: int = 0, limit: int = 200, mailbox_id: int | None = None, text: str | None = None
    ) -> tuple[list[ops.MessageRow], int]:
        self._read()
        rows = [
            r
            for r in self._messages()
            if (mailbox_id is None or r.mailbox_id == mailbox_id)
            and (not text or text.lower() in f"{r.subject or ''} {r.from_addr or ''}".lower())
        ]
        return rows[offset : offset + limit], len(rows)

    def message_detail(self, message_id: int) -> ops.MessageDetail:
        self._read()
        row = next((r for r in self._messages() if r.id == message_id), None)
        if row is None:
            raise NotFoundError(f"no message with id {message_id}")
        headers = [("From", row.from_addr or ""), ("To", "support@acme.example"), ("Subject", row.subject or ""), ("X-Hostile", HOSTILE)]
        text = f"Hello,\n\nthe body of message {row.id}, shown literally: {HOSTILE}\n\n-- \nAnn"
        attachments = [
            ops.AttachmentRow(900 + n, name, "application/pdf", 4096 * (n + 1))
            for n, name in enumerate(["r.pdf", "../../etc/passwd"][: row.attachments])
        ]
        return ops.MessageDetail(row, "INBOX", headers, text, False, attachments)
