"""The operations layer: every read model and action the CLI and the console share.

Neither the CLI nor the console touches Redis keys or rq internals directly;
they call these functions. Lists that can be huge (mailboxes, failed jobs) are
windowed with ``offset``/``limit`` so a console refresh stays cheap at 10,000
mailboxes and 100,000 failed jobs.

Redis failures surface as ``QueueError``, database failures as ``DatabaseError``;
``overview`` alone degrades instead (it fills ``redis_error``/``database_error``),
because the console must keep drawing when one of them is down.
"""

from __future__ import annotations

from .failed import (
    delete_failed,
    failed_job,
    failed_jobs,
    requeue_all_failed,
    requeue_failed,
)
from .farm import queue_stats, resync, schedule_diff, scheduled_polls, workers
from .mailboxes import (
    mailbox_detail,
    mailbox_rows,
    pause,
    poll_now,
    resume,
    sync_mailbox,
    test_login,
    wait_for_jobs,
)
from .messages import message_detail, recent_messages
from .overview import overview, status
from .types import (
    AttachmentRow,
    FailedJob,
    MailboxRow,
    MessageDetail,
    MessageRow,
    Overview,
    PollRunRow,
    QueueStats,
    ReconcileReport,
    ScheduleDiff,
    ScheduledPoll,
    WorkerInfo,
)

__all__ = [
    "AttachmentRow",
    "FailedJob",
    "MailboxRow",
    "MessageDetail",
    "MessageRow",
    "Overview",
    "PollRunRow",
    "QueueStats",
    "ReconcileReport",
    "ScheduleDiff",
    "ScheduledPoll",
    "WorkerInfo",
    "delete_failed",
    "failed_job",
    "failed_jobs",
    "mailbox_detail",
    "mailbox_rows",
    "message_detail",
    "overview",
    "pause",
    "poll_now",
    "queue_stats",
    "recent_messages",
    "requeue_all_failed",
    "requeue_failed",
    "resume",
    "resync",
    "schedule_diff",
    "scheduled_polls",
    "status",
    "sync_mailbox",
    "test_login",
    "wait_for_jobs",
    "workers",
]
