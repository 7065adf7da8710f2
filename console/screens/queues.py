"""Queues and workers: every queue's counts, and each worker's state, job and heartbeat."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult

from mailq.ops import QueueStats, WorkerInfo

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .overview import QUEUE_COLUMNS, queue_rows

WORKER_COLUMNS = [
    ("name", "Worker"),
    ("host", "Host / pid"),
    ("state", "State"),
    ("job", "Current job"),
    ("mailbox", "Mailbox"),
    ("heartbeat", "Heartbeat"),
    ("successes", ">Succeeded"),
    ("failures", ">Failed"),
    ("queues", "Queues"),
]


def worker_row(w: WorkerInfo) -> list:
    state = Text("stale", style="bold red") if w.stale else Text(w.state, style="green" if w.state == "busy" else "")
    heartbeat = fmt.seconds(w.heartbeat_age_s)
    if w.stale:
        heartbeat = Text(f"{heartbeat.plain} (stale)", style="bold red")
    return [
        fmt.cell(w.name, 40),
        fmt.cell(f"{w.hostname} / {w.pid if w.pid is not None else '?'}", 40),
        state,
        fmt.cell(w.current_job_id, 40),
        fmt.mailbox(w.current_mailbox_name, w.current_mailbox_id),
        heartbeat,
        fmt.count(w.successes),
        fmt.count(w.failures, warn=True),
        fmt.cell(", ".join(w.queues), 60, style="dim"),
    ]


class QueuesScreen(LiveScreen):
    """Read-only: queue work happens in the failed-jobs view and by the workers."""

    SCOPE = VIEW = "queues"
    BINDINGS = commands.bindings("queues")

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield KeyedTable(QUEUE_COLUMNS, id="queues", focusable=False)
        yield KeyedTable(WORKER_COLUMNS, id="workers")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.query_one("#queues").border_title = "Queues"
        self.query_one("#workers").border_title = "Workers"
        self.query_one("#workers").focus()

    def fetch(self, source: Source) -> tuple[list[QueueStats], list[WorkerInfo]]:
        return source.queue_stats(), source.workers()

    def show(self, data: tuple[list[QueueStats], list[WorkerInfo]]) -> None:
        queues, workers = data
        self.query_one("#queues", KeyedTable).sync(queue_rows(queues))
        self.query_one("#workers", KeyedTable).sync((w.name, worker_row(w)) for w in workers)
        busy = sum(1 for w in workers if w.state == "busy")
        stale = sum(1 for w in workers if w.stale)
        self.query_one("#workers").border_subtitle = f"{len(workers)} online, {busy} busy, {stale} stale"
