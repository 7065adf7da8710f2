"""Mailboxes: one page of the mailbox table, filtered by text and state, with the mailbox actions."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on

from mailq.ops import MailboxRow
from mailq.states import DISPLAY_STATES

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.filter_bar import FilterBar
from .listing import ListScreen
from .mailbox_actions import MAILBOX_ACTIONS, MailboxActions, Target

STATES = DISPLAY_STATES
COLUMNS = [  # what an operator scans for comes first: at 80 columns the rest is scrolled to
    ("name", "Name"),
    ("state", "State"),
    ("last_poll", "Last poll"),
    ("failures", ">Failures"),
    ("new_today", ">New today"),
    ("last_error", "Last error"),
    ("next_run", "Next run"),
    ("last_success", "Last success"),
    ("host", "Host"),
]


def parse_filter(value: str) -> tuple[str | None, str | None]:
    """'acme state:failing' -> text 'acme', state 'failing' (also 'is:paused')."""
    words, state = [], None
    for word in value.split():
        key, _, rest = word.partition(":")
        if key.lower() in ("state", "is") and rest.lower() in STATES:
            state = rest.lower()
        else:
            words.append(word)
    return (" ".join(words) or None), state


def _push_mark(push: str | None) -> Text:
    """' pushed' / ' reconnecting' after the state; nothing for a mailbox that is only polled."""
    if push == "pushed":
        return Text(" pushed", style="cyan")
    if push == "reconnecting":
        return Text(" reconnecting", style="yellow")
    return Text("")


def mailbox_row(row: MailboxRow, now: datetime) -> list:
    return [
        fmt.cell(row.name, 40),
        fmt.state(row.state) + _push_mark(row.push),
        fmt.ago(row.last_poll_at, now),
        fmt.count(row.consecutive_failures, warn=True),
        fmt.count(row.new_today),
        fmt.cell(row.last_error, 80, style="red"),
        fmt.ago(row.next_run_at, now),
        fmt.ago(row.last_success_at, now),
        fmt.cell(row.host, 32),
    ]


class MailboxesScreen(MailboxActions, ListScreen):
    """The mailbox list; Enter opens the detail view of the selected mailbox."""

    SCOPE = VIEW = "mailboxes"
    BINDINGS = commands.bindings("mailboxes")
    PAGE = 200
    COLUMNS, TABLE_ID, INFO_ID = COLUMNS, "mailboxes", "mailboxes-info"
    FILTER = ("filter: text, state:failing, state:auth_error, state:paused, state:ok", "mailbox-filter")

    def __init__(self) -> None:
        super().__init__()
        self.filter_text: str | None = None
        self.filter_state: str | None = None

    def read(self, source: Source) -> tuple[list[MailboxRow], int]:
        return source.mailbox_rows(offset=self.page_offset, limit=self.PAGE, text=self.filter_text, state=self.filter_state)

    def cells(self, row: MailboxRow, now: datetime) -> list:
        return mailbox_row(row, now)

    def info(self) -> Text:
        info = Text()
        info.append("state ", style="dim")
        info.append(self.filter_state or "all", style=fmt.STATE_STYLES.get(self.filter_state or "", "bold"))
        if self.filter_text:
            info.append("  text ", style="dim")
            info.append(self.filter_text)
        info.append(f"  {self.page_label()}", style="dim")
        return info

    def target(self) -> Target | None:
        row = self.current_row()
        return Target(row.id, row.name, row.state) if row else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MAILBOX_ACTIONS:
            return self.check_mailbox_action(action)
        if action == "open":
            return True if self.target() else None
        return self.check_page_action(action)

    def action_open(self) -> None:
        from .mailbox_detail import MailboxScreen

        if (t := self.target()) is not None:
            self.app.push_screen(MailboxScreen(t.id, t.name))

    def action_filter(self) -> None:
        self.open_filter()

    def action_cycle_state(self) -> None:
        order = (None,) + STATES
        self.filter_state = order[(order.index(self.filter_state) + 1) % len(order)]
        self.filter_changed()

    @on(FilterBar.Applied)
    def _filter_applied(self, event: FilterBar.Applied) -> None:
        text, state = parse_filter(event.value)
        self.filter_text = text
        if state is not None or not event.value:
            self.filter_state = state
        self.filter_changed()
