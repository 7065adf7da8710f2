"""Overview: mailbox health, queue depths, workers, failed jobs, ingest rate and scheduler liveness."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from mailq.errors import DatabaseError, QueueError
from mailq.ops import MailboxRow, Overview
from mailq.states import DISPLAY_STATES, State

from .. import commands
from .. import format as fmt
from ..source import Source, describe_failure
from ..widgets.ingest import IngestPanel
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .mailbox_actions import resync

QUEUE_COLUMNS = [
    ("name", "Queue"),
    ("queued", ">Queued"),
    ("started", ">Started"),
    ("scheduled", ">Scheduled"),
    ("deferred", ">Deferred"),
    ("failed", ">Failed"),
    ("finished", ">Finished"),
]


ATTENTION_COLUMNS = [
    ("name", "Mailbox"),
    ("state", "State"),
    ("failures", ">Failures"),
    ("last_poll", "Last poll"),
    ("last_error", "Last error"),
]
ATTENTION_LIMIT = 10
"""Per state: the overview lists at most this many failing and auth_error mailboxes."""


def queue_rows(queues) -> list[tuple[str, list]]:
    return [
        (
            q.name,
            [
                Text(q.name),
                fmt.count(q.queued),
                fmt.count(q.started),
                fmt.count(q.scheduled),
                fmt.count(q.deferred),
                fmt.count(q.failed, warn=True),
                fmt.count(q.finished),
            ],
        )
        for q in queues
    ]


class OverviewScreen(LiveScreen):
    """The farm at a glance; the resync action is here too because schedule drift shows up here first."""

    SCOPE = VIEW = "overview"
    BINDINGS = commands.bindings("overview")

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal(id="overview-panels"):
            with Vertical(classes="panel", id="health-panel"):
                yield Static(id="health")
            with Vertical(classes="panel", id="farm-panel"):
                yield Static(id="farm")
        with Vertical(classes="panel", id="ingest-panel"):
            yield IngestPanel()
        yield KeyedTable(QUEUE_COLUMNS, id="overview-queues", focusable=False)  # read-only panels
        yield KeyedTable(ATTENTION_COLUMNS, id="attention", focusable=False)
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.query_one("#health-panel").border_title = "Mailboxes"
        self.query_one("#farm-panel").border_title = "Farm"
        self.query_one("#ingest-panel").border_title = "Ingest"
        self.query_one("#overview-queues").border_title = "Queues"
        self.query_one("#attention").border_title = "Needs attention"

    def fetch(self, source: Source) -> tuple[Overview, list[MailboxRow], datetime]:
        """The overview, plus the first failing and auth_error mailboxes (two small indexed reads)."""
        overview = source.overview()
        attention: list[MailboxRow] = []
        if not overview.database_error:
            for state in (State.AUTH_ERROR, State.FAILING):
                if overview.states.get(state):
                    attention += source.mailbox_rows(limit=ATTENTION_LIMIT, state=state)[0]
        return overview, attention, source.now()

    def problem(self, data: tuple[Overview, list[MailboxRow], datetime]) -> str | None:
        overview = data[0]
        parts = [
            describe_failure(QueueError(overview.redis_error))[1] if overview.redis_error else None,
            describe_failure(DatabaseError(overview.database_error))[1] if overview.database_error else None,
        ]
        return "; ".join(p for p in parts if p) or None

    def show(self, data: tuple[Overview, list[MailboxRow], datetime]) -> None:
        """Parts whose source is down keep their last values (the banner says so)."""
        overview, attention, now = data
        if not overview.database_error:
            self._show_health(overview)
            self.query_one(IngestPanel).show(overview.ingested_last_hour, overview.ingest_per_minute)
            table = self.query_one("#attention", KeyedTable)
            table.sync(
                (
                    str(r.id),
                    [
                        fmt.cell(r.name, 40),
                        fmt.state(r.state),
                        fmt.count(r.consecutive_failures, warn=True),
                        fmt.ago(r.last_poll_at, now),
                        fmt.cell(r.last_error, 90, style="red"),
                    ],
                )
                for r in attention
            )
            shown = overview.states.get(State.FAILING, 0) + overview.states.get(State.AUTH_ERROR, 0)
            table.border_subtitle = (
                f"{len(attention)} of {shown:,}; 2 lists them all" if shown > len(attention) else ("none" if not shown else "")
            )
        if not overview.redis_error:
            self._show_farm(overview, now)
            self.query_one("#overview-queues", KeyedTable).sync(queue_rows(overview.queues))

    def _show_health(self, overview: Overview) -> None:
        health = Table.grid(padding=(0, 2))
        health.add_column()
        health.add_column(justify="right")
        for name in DISPLAY_STATES:
            health.add_row(fmt.state(name), fmt.count(overview.states.get(name, 0), warn=name in (State.FAILING, State.AUTH_ERROR)))
        health.add_row(Text("total", style="bold"), Text(f"{sum(overview.states.values()):,}", style="bold"))
        self.query_one("#health", Static).update(health)

    def _show_farm(self, overview: Overview, now: datetime) -> None:
        farm = Table.grid(padding=(0, 2))
        farm.add_column()
        farm.add_column()
        workers = Text(f"{overview.workers_online:,} online, {overview.workers_busy:,} busy")
        if overview.workers_stale:
            workers.append(f", {overview.workers_stale:,} stale", style="bold red")
        farm.add_row("Workers", workers)
        farm.add_row("Failed jobs", Text(f"{overview.failed_total:,}", style="bold red" if overview.failed_total else ""))
        alive = Text("running", style="green") if overview.scheduler_alive else Text("NOT RUNNING", style="bold red")
        farm.add_row("Scheduler", alive)
        farm.add_row("Last reconcile", fmt.ago(overview.scheduler_last_reconcile_at, now))
        self.query_one("#farm", Static).update(farm)

    def action_resync(self) -> None:
        resync(self.app)
