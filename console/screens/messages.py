"""Recent messages across mailboxes: date, sender, subject, size, attachments, dispatch state; `/` filters."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on

from mailq.ops import MessageRow

from .. import commands
from .. import format as fmt
from ..source import Source
from ..widgets.filter_bar import FilterBar
from .listing import ListScreen
from .message_detail import MessageScreen

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


class MessagesScreen(ListScreen):
    """Newest stored messages first; Enter opens one (headers, text body, attachments, all literal)."""

    SCOPE = VIEW = "messages"
    BINDINGS = commands.bindings("messages")
    PAGE = 200
    COLUMNS, TABLE_ID, INFO_ID = COLUMNS, "messages", "messages-info"
    FILTER = ("filter: subject or sender", "messages-filter")

    def __init__(self) -> None:
        super().__init__()
        self.text: str | None = None

    def read(self, source: Source) -> tuple[list[MessageRow], int]:
        return source.messages(offset=self.page_offset, limit=self.PAGE, text=self.text)

    def cells(self, row: MessageRow, now: datetime) -> list:
        return message_row(row, now)

    def info(self) -> Text:
        info = Text()
        info.append("Recent messages ", style="bold")
        if self.text:
            info.append("  matching ", style="dim")
            info.append(self.text)
        info.append(f"· {self.page_label()}", style="dim")
        return info

    def current(self) -> MessageRow | None:
        return self.current_row()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return True if self.current() else None
        return self.check_page_action(action)

    def action_open(self) -> None:
        if (row := self.current()) is not None:
            self.app.push_screen(MessageScreen(row.id))

    def action_filter_messages(self) -> None:
        self.open_filter()

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.text = event.value.strip() or None
        self.filter_changed()
