"""One failed job with its full traceback; requeue or delete it from here."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from mailq.errors import NotFoundError
from mailq.ops import FailedJob

from .. import commands
from .. import format as fmt
from ..source import Source
from .base import LiveScreen
from .failed import delete, requeue


class FailedJobScreen(LiveScreen):
    """Pushed from the failed list; says so when the job has left the registry meanwhile."""

    SCOPE = "failed_job"
    VIEW = "failed"
    BINDINGS = commands.bindings("failed_job")

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.job: FailedJob | None = None
        self._shown_traceback: str | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(classes="panel", id="job-info-panel"):
            yield Static(id="job-info")
        with VerticalScroll(classes="panel", id="traceback-panel"):
            yield Static(id="traceback")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.query_one("#job-info-panel").border_title = "Failed job"
        self.query_one("#traceback-panel").border_title = "Traceback"
        self.query_one("#traceback-panel").focus()

    def fetch(self, source: Source) -> tuple[FailedJob | None, datetime]:
        try:
            return source.failed_job(self.job_id), source.now()
        except NotFoundError:
            return None, source.now()

    def show(self, data: tuple[FailedJob | None, datetime]) -> None:
        job, now = data
        self.job = job
        info = self.query_one("#job-info", Static)
        if job is None:
            info.update(
                Text.assemble(fmt.cell(self.job_id, 80), (" is no longer in the failed registry (requeued or deleted).", "bold yellow"))
            )
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_row("id", fmt.cell(job.id, 100))
        grid.add_row("queue", fmt.cell(job.queue))
        grid.add_row("function", fmt.cell(job.function))
        grid.add_row("mailbox", fmt.cell(job.mailbox_name or (job.mailbox_id and f"#{job.mailbox_id}")))
        grid.add_row("failed", Text.assemble(fmt.timestamp(job.failed_at), " (", fmt.ago(job.failed_at, now), ")"))
        grid.add_row("error", fmt.cell(job.error_line, 300, style="red"))
        info.update(grid)
        if job.traceback != self._shown_traceback:  # keep the scroll position while it is unchanged
            self._shown_traceback = job.traceback
            self.query_one("#traceback", Static).update(fmt.block(job.traceback or "(no traceback stored)"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("requeue", "delete"):
            return True if self.job is not None else None
        return True

    def action_requeue(self) -> None:
        if self.job is not None:
            requeue(self.app, self.job_id, then=self.dismiss)

    def action_delete(self) -> None:
        if self.job is not None:
            delete(self.app, self.job_id, then=self.dismiss)

    def action_back(self) -> None:
        self.dismiss()
