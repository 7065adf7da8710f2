"""One mailbox: its settings and health, and the recent poll runs with their errors."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mailq.errors import NotFoundError
from mailq.ops import MessageRow, PollRunRow
from mailq.states import Outcome
from mailq.text import literal

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .mailbox_actions import MAILBOX_ACTIONS, MailboxActions, Target
from .message_detail import MessageScreen
from .messages import COLUMNS as MESSAGE_COLUMNS
from .messages import message_row

RUN_COLUMNS = [
    ("started", "Started"),
    ("took", "Took"),
    ("outcome", "Outcome"),
    ("new", ">New"),
    ("skipped", ">Skipped"),
    ("error_class", "Error"),
    ("error_text", "Error text"),
]
SHOWN_FIELDS = (
    "name",
    "host",
    "port",
    "security",
    "username",
    "auth",
    "oauth_app",
    "oauth_grant",
    "token_expires_at",
    "last_refresh_at",
    "last_refresh_outcome",
    "folders",
    "interval",
    "priority",
    "state",
    "push",
    "consecutive_failures",
    "next_run_at",
    "next_attempt_at",
    "last_poll_at",
    "last_success_at",
    "poll_job",
    "last_error_class",
)
RECENT_MESSAGES = 10


def run_row(run: PollRunRow, now: datetime) -> list:
    took = fmt.seconds((run.finished_at - run.started_at).total_seconds()) if run.finished_at else Text("running")
    outcome_style = {Outcome.OK: "green", Outcome.PARTIAL: "yellow"}.get(run.outcome, "red" if run.outcome != Outcome.RUNNING else "")
    return [
        fmt.ago(run.started_at, now),
        took,
        Text(run.outcome, style=outcome_style),
        fmt.count(run.new_count),
        fmt.count(run.skipped_count),
        fmt.cell(run.error_class, 20),
        fmt.cell(run.error_text, 120, style="red"),
    ]


class MailboxScreen(MailboxActions, LiveScreen):
    """Pushed from the mailbox list; refreshed like the views while it is on top."""

    SCOPE = "mailbox"
    VIEW = "mailboxes"
    BINDINGS = commands.bindings("mailbox")

    def __init__(self, mailbox_id: int, name: str) -> None:
        super().__init__()
        self.mailbox_id = mailbox_id
        self.mailbox_name = name
        self.mailbox_state: str | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(classes="panel", id="mailbox-info-panel"):
            yield Static(id="mailbox-info")
        yield KeyedTable(RUN_COLUMNS, id="poll-runs")
        yield KeyedTable([c for c in MESSAGE_COLUMNS if c[0] != "mailbox"], id="mailbox-messages")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.title = f"mailq console — {literal(self.mailbox_name, 60)}"
        self.query_one("#mailbox-info-panel").border_title = "Mailbox"
        self.query_one("#poll-runs").border_title = "Recent poll runs"
        self.query_one("#mailbox-messages").border_title = "Recent messages (Enter opens)"
        self.query_one("#poll-runs", KeyedTable).focus()

    def fetch(self, source: Source) -> tuple[dict | None, list[PollRunRow], list[MessageRow], datetime]:
        try:
            info, runs = source.mailbox_detail(self.mailbox_id)
        except NotFoundError:
            return None, [], [], source.now()
        messages, _ = source.messages(limit=RECENT_MESSAGES, mailbox_id=self.mailbox_id)
        return info, runs, messages, source.now()

    def show(self, data: tuple[dict | None, list[PollRunRow], list[MessageRow], datetime]) -> None:
        info, runs, messages, now = data
        panel = self.query_one("#mailbox-info", Static)
        if info is None:
            self.mailbox_state = None
            panel.update(Text(f"Mailbox {self.mailbox_id} no longer exists.", style="bold red"))
            self.query_one("#poll-runs", KeyedTable).sync([])
            self.query_one("#mailbox-messages", KeyedTable).sync([])
            return
        self.mailbox_state = str(info.get("state") or "")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for key in SHOWN_FIELDS:
            if key in info:
                value = info[key]
                if key == "state":
                    grid.add_row(key, fmt.state(str(value)))
                elif isinstance(value, list):
                    grid.add_row(key, fmt.cell(", ".join(map(str, value)), 200))
                else:
                    grid.add_row(key, fmt.cell(value, 200))
        grid.add_row("last_error", fmt.cell(info.get("last_error"), 300, style="red"))
        panel.update(grid)
        self.query_one("#poll-runs", KeyedTable).sync((str(r.id), run_row(r, now)) for r in runs)
        self.query_one("#mailbox-messages", KeyedTable).sync((str(m.id), message_row(m, now, with_mailbox=False)) for m in messages)

    @on(KeyedTable.RowSelected, "#mailbox-messages")
    def _open_message(self, event: KeyedTable.RowSelected) -> None:

        if event.row_key.value is not None:
            self.app.push_screen(MessageScreen(int(event.row_key.value)))

    def target(self) -> Target | None:
        if self.mailbox_state is None:
            return None
        return Target(self.mailbox_id, self.mailbox_name, self.mailbox_state)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MAILBOX_ACTIONS:
            return self.check_mailbox_action(action)
        return True

    def action_back(self) -> None:
        self.dismiss()
