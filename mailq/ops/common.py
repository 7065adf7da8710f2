"""Helpers shared by the operations modules."""

from __future__ import annotations

from datetime import UTC, datetime

from rq.job import Job, JobStatus
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from .. import keys
from ..db import errors_as_mailq
from ..models import Mailbox

_REGISTRIES = (StartedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry)
_DONE = {JobStatus.FINISHED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value, JobStatus.CANCELED.value}
STALE_BUSY_S = 120  # a busy worker's heartbeat is renewed every ~30 s while its job runs
STALE_IDLE_S = 480  # an idle worker heartbeats once per blocking dequeue (worker_ttl 420 s - 15)
SEARCH_SCAN_CAP = 20_000  # failed-job search looks at this many newest jobs at most


def _naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _from_epoch(score: float | None) -> datetime | None:
    return None if score is None else datetime.fromtimestamp(score, UTC).replace(tzinfo=None)


def _names(mailbox_ids: set[int]) -> dict[int, str]:
    if not mailbox_ids:
        return {}
    with errors_as_mailq():
        return {m.id: m.name for m in Mailbox.select(Mailbox.id, Mailbox.name).where(Mailbox.id.in_(list(mailbox_ids)))}


def _mailbox_of(job: Job | None) -> int | None:
    """The mailbox a job is about (poll jobs and the recurring templates carry its id first)."""
    if job is None:
        return None
    try:
        if job.func_name == keys.POLL_JOB and job.args:
            return int(job.args[0])
    except Exception:  # unreadable job data: show it without a mailbox
        return None
    return None
