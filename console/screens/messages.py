"""Recent messages across mailboxes: date, sender, subject, size, attachments, dispatch state; `/` filters."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from mailq.ops import MessageRow

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .message_detail import MessageScreen
from .paged import Paged

COLUMNS = [
    ("date", "Date"),
    ("mailbox", "Mailbox"),
    ("from", "From"),
    ("subject", "Subject"),
    ("size", ">Size"),
    ("att", ">Att"),
    ("dispatch", "Dispatch"),
]
DISPATCH_STYLES = {"delivered": "green", "pending": "yellow", "none": "dim"}


def message_row(m: MessageRow, now: datetime, with_mailbox: bool = True) -> list:
    cells = [
        Text(m.date.strftime("%Y-%m-%d %H:%M")) if m.date else fmt.cell(None),
        fmt.cell(m.mailbox_name, 20),
        fmt.cell(m.from_addr, 28),
        fmt.cell(m.subject or "(no subject)", 46),
        fmt.size(m.size),
        fmt.count(m.attachments),
        Text(m.dispatch, style=DISPATCH_STYLES.get(m.dispatch, "")),
    ]
    return cells if with_mailbox else cells[:1] + cells[2:]


class MessagesScreen(Paged, LiveScreen):
    """Newest stored messages first; Enter opens one (headers, text body, attachments, all literal)."""

    SCOPE = VIEW = "messages"
    BINDINGS = commands.bindings("messages")
    PAGE = 200

    def __init__(self) -> None:
        super().__init__()
        self.text: str | None = None
        self.rows: dict[str, MessageRow] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static(id="messages-info", classes="info")
        yield FilterBar("filter: subject or sender", id="messages-filter")
        yield KeyedTable(COLUMNS, id="messages")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.query_one(KeyedTable).focus()
        self._show_info()

    def fetch(self, source: Source) -> tuple[list[MessageRow], int, datetime]:
        rows, total = source.messages(offset=self.page_offset, limit=self.PAGE, text=self.text)
        return rows, total, source.now()

    def show(self, data: tuple[list[MessageRow], int, datetime]) -> None:
        rows, total, now = data
        if self.settle_page(total):
            self.app.refresh_now()
        self.rows = {str(m.id): m for m in rows}
        table = self.query_one(KeyedTable)
        table.sync((key, message_row(m, now)) for key, m in self.rows.items())
        self.after_sync(table)
        self._show_info()

    def _show_info(self) -> None:
        info = Text()
        info.append("Recent messages ", style="bold")
        if self.text:
            info.append("  matching ", style="dim")
            info.append(self.text)
        info.append(f"· {self.page_label()}", style="dim")
        self.query_one("#messages-info", Static).update(info)

    def current(self) -> MessageRow | None:
        return self.rows.get(self.query_one(KeyedTable).current_key or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return True if self.current() else None
        return self.check_page_action(action)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_bindings()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        if (row := self.current()) is not None:
            self.app.push_screen(MessageScreen(row.id))

    def action_filter_messages(self) -> None:
        self.query_one(FilterBar).open()

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.text = event.value.strip() or None
        self.reset_page()
        self._show_info()
        self.app.refresh_now()
