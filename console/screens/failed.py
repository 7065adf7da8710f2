"""Failed jobs: one page of RQ's failed-job registries; requeue, requeue all, delete, find by id."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on

from mailq.ops import FailedJob
from mailq.text import literal

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.filter_bar import FilterBar
from .confirm import ConfirmScreen
from .listing import ListScreen

COLUMNS = [
    ("id", "Job id"),
    ("queue", "Queue"),
    ("function", "Function"),
    ("mailbox", "Mailbox"),
    ("error", "Error"),
    ("failed_at", "Failed"),
]


def failed_row(job: FailedJob, now: datetime) -> list:
    return [
        fmt.cell(job.id, 48),
        fmt.cell(job.queue, 16),
        fmt.cell(job.function, 40),
        fmt.mailbox(job.mailbox_name, job.mailbox_id),
        fmt.cell(job.error_line, 70, style="red"),
        fmt.ago(job.failed_at, now),
    ]


def requeue(app, job_id: str, then=None) -> None:
    def call(source: Source) -> str:
        done = source.requeue_failed([job_id])
        return f"Requeued job {literal(job_id, 60)}" if done else f"Job {literal(job_id, 60)} was no longer failed"

    app.act(f"Requeue of {literal(job_id, 60)}", call, then)


def delete(app, job_id: str, then=None) -> None:
    """Ask first; deleting a failed job loses its traceback for good."""

    def confirmed(yes: bool | None) -> None:
        if not yes:
            app.notify("Delete cancelled", markup=False, timeout=2)
            return

        def call(source: Source) -> str:
            done = source.delete_failed([job_id])
            return f"Deleted job {literal(job_id, 60)}" if done else f"Job {literal(job_id, 60)} was already gone"

        app.act(f"Delete of {literal(job_id, 60)}", call, then)

    app.push_screen(
        ConfirmScreen(f"Delete failed job {literal(job_id, 60)}?", "Its traceback is lost; the job does not run again.", "Delete"),
        confirmed,
    )


class FailedScreen(ListScreen):
    """The failed-job list; `/` finds jobs by id (or function or error text)."""

    SCOPE = VIEW = "failed"
    BINDINGS = commands.bindings("failed")
    PAGE = 100
    COLUMNS, TABLE_ID, INFO_ID = COLUMNS, "failed", "failed-info"
    FILTER = ("find: job id, function or error text", "failed-find")

    def __init__(self) -> None:
        super().__init__()
        self.find_text: str | None = None

    def read(self, source: Source) -> tuple[list[FailedJob], int]:
        return source.failed_jobs(offset=self.page_offset, limit=self.PAGE, search=self.find_text)

    def row_key(self, job: FailedJob) -> str:
        return job.id

    def cells(self, job: FailedJob, now: datetime) -> list:
        return failed_row(job, now)

    def info(self) -> Text:
        info = Text()
        info.append(f"{self.total:,} failed", style="bold red" if self.total else "green")
        if self.find_text:
            info.append("  matching ", style="dim")
            info.append(self.find_text)
        info.append(f"  {self.page_label()}", style="dim")
        return info

    def current(self) -> str | None:
        job = self.current_row()
        return job.id if job else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open", "requeue", "delete"):
            return True if self.current() else None
        if action == "requeue_all":
            return True if self.total and not self.find_text else None
        return self.check_page_action(action)

    def action_open(self) -> None:
        from .failed_detail import FailedJobScreen

        if (job_id := self.current()) is not None:
            self.app.push_screen(FailedJobScreen(job_id))

    def action_find(self) -> None:
        self.open_filter()

    @on(FilterBar.Applied)
    def _find(self, event: FilterBar.Applied) -> None:
        self.find_text = event.value.strip() or None
        self.filter_changed()

    def action_requeue(self) -> None:
        if (job_id := self.current()) is not None:
            requeue(self.app, job_id)

    def action_delete(self) -> None:
        if (job_id := self.current()) is not None:
            delete(self.app, job_id)

    def action_requeue_all(self) -> None:
        count = self.total

        def confirmed(yes: bool | None) -> None:
            if not yes:
                self.app.notify("Requeue all cancelled", markup=False, timeout=2)
                return

            def call(source: Source) -> str:
                return f"Requeued {source.requeue_all_failed():,} failed jobs"

            self.app.act("Requeue all", call)

        self.app.push_screen(
            ConfirmScreen(
                f"Requeue all {count:,} failed jobs?", "Each goes back on the queue it failed on and runs again.", f"Requeue {count:,}"
            ),
            confirmed,
        )
