"""One message: its headers, text body and attachment list, every character shown literally."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from mailq.errors import NotFoundError
from mailq.ops import MessageDetail

from .. import commands
from .. import format as fmt
from ..source import Source
from .base import LiveScreen


class MessageScreen(LiveScreen):
    """Pushed from the messages view or a mailbox's detail."""

    SCOPE = "message"
    VIEW = "messages"
    BINDINGS = commands.bindings("message")

    def __init__(self, message_id: int) -> None:
        super().__init__()
        self.message_id = message_id
        self.detail: MessageDetail | None = None
        self._shown: int | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(classes="panel", id="message-headers-panel"):
            yield Static(id="message-headers")
        with VerticalScroll(classes="panel", id="message-body-panel"):
            yield Static(id="message-body")
        with Vertical(classes="panel", id="message-attachments-panel"):
            yield Static(id="message-attachments")
        yield from self.compose_bottom()

    def on_mount(self) -> None:
        self.title = f"mailq console — message {self.message_id}"
        self.query_one("#message-headers-panel").border_title = "Headers"
        self.query_one("#message-body-panel").border_title = "Text body"
        self.query_one("#message-attachments-panel").border_title = "Attachments"
        self.query_one("#message-body-panel").focus()

    def fetch(self, source: Source) -> MessageDetail | None:
        try:
            return source.message_detail(self.message_id)
        except NotFoundError:
            return None

    def show(self, data: MessageDetail | None) -> None:
        self.detail = data
        headers = self.query_one("#message-headers", Static)
        if data is None:
            headers.update(Text(f"Message {self.message_id} no longer exists.", style="bold red"))
            return
        if self._shown == data.row.id:
            return  # a stored message never changes: keep the scroll position
        self._shown = data.row.id
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        grid.add_row("mailbox", Text.assemble(fmt.cell(data.row.mailbox_name, 80), "  ", fmt.cell(data.folder, 60)))
        grid.add_row("size", Text.assemble(fmt.size(data.row.size), f"   dispatch: {data.row.dispatch}"))
        for name, value in data.headers:
            grid.add_row(fmt.cell(name, 40), fmt.cell(value, 500))
        if data.problem:
            grid.add_row("problem", fmt.cell(data.problem, 300, style="red"))
        headers.update(grid)
        body = fmt.block(data.text) if data.text is not None else Text("(no text body)", style="dim")
        if data.text_truncated:
            body.append("\n… (cut: see `mailq messages raw` for the whole message)", style="dim")
        self.query_one("#message-body", Static).update(body)
        lines = Text("\n").join(
            Text.assemble(
                (f"#{a.id}  ", "dim"), fmt.cell(a.filename or "(unnamed)", 80), "  ", fmt.cell(a.content_type, 60), "  ", fmt.size(a.size)
            )
            for a in data.attachments
        )
        self.query_one("#message-attachments", Static).update(lines if data.attachments else Text("(none)", style="dim"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True

    def action_back(self) -> None:
        self.dismiss()
