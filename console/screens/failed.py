"""Failed jobs: one page of RQ's failed-job registries; requeue, requeue all, delete, find by id."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from mailq.ops import FailedJob
from mailq.text import literal

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .confirm import ConfirmScreen
from .paged import Paged

COLUMNS = [
    ("id", "Job id"),
    ("queue", "Queue"),
    ("function", "Function"),
    ("mailbox", "Mailbox"),
    ("error", "Error"),
    ("failed_at", "Failed"),
]


def failed_row(job: FailedJob, now: datetime) -> list:
    mailbox = (
        fmt.cell(job.mailbox_name, 40)
        if job.mailbox_name
        else (Text(f"#{job.mailbox_id}") if job.mailbox_id is not None else fmt.cell(None))
    )
    return [
        fmt.cell(job.id, 48),
        fmt.cell(job.queue, 16),
        fmt.cell(job.function, 40),
        mailbox,
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


class FailedScreen(Paged, LiveScreen):
    """The failed-job list; `/` finds jobs by id (or function or error text)."""

    SCOPE = VIEW = "failed"
    BINDINGS = commands.bindings("failed")
    PAGE = 100

    def __init__(self) -> None:
        super().__init__()
        self.find_text: str | None = None
        self.jobs: dict[str, FailedJob] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static(id="failed-info", classes="info")
        yield FilterBar("find: job id, function or error text", id="failed-find")
        yield KeyedTable(COLUMNS, id="failed")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.query_one(KeyedTable).focus()
        self._show_info()

    def fetch(self, source: Source) -> tuple[list[FailedJob], int, datetime]:
        jobs, total = source.failed_jobs(offset=self.page_offset, limit=self.PAGE, search=self.find_text)
        return jobs, total, source.now()

    def show(self, data: tuple[list[FailedJob], int, datetime]) -> None:
        jobs, total, now = data
        if self.settle_page(total):
            self.app.refresh_now()
        self.jobs = {j.id: j for j in jobs}
        table = self.query_one(KeyedTable)
        table.sync((key, failed_row(j, now)) for key, j in self.jobs.items())
        self.after_sync(table)
        self._show_info()

    def _show_info(self) -> None:
        info = Text()
        info.append(f"{self.total:,} failed", style="bold red" if self.total else "green")
        if self.find_text:
            info.append("  matching ", style="dim")
            info.append(self.find_text)
        info.append(f"  {self.page_label()}", style="dim")
        self.query_one("#failed-info", Static).update(info)

    def current(self) -> str | None:
        key = self.query_one(KeyedTable).current_key
        return key if key in self.jobs else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open", "requeue", "delete"):
            return True if self.current() else None
        if action == "requeue_all":
            return True if self.total and not self.find_text else None
        return self.check_page_action(action)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_bindings()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        from .failed_detail import FailedJobScreen

        if (job_id := self.current()) is not None:
            self.app.push_screen(FailedJobScreen(job_id))

    def action_find(self) -> None:
        self.query_one(FilterBar).open()

    @on(FilterBar.Applied)
    def _find(self, event: FilterBar.Applied) -> None:
        self.find_text = event.value.strip() or None
        self.reset_page()
        self._show_info()
        self.app.refresh_now()

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
