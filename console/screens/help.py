"""Every key and action, straight from the command registry (so it cannot drift from the bindings)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..commands import APP, COMMANDS, SCOPE_TITLES


def _key(command) -> str:
    return command.key_display or command.key


def help_table(current: str) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=False, expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(style="dim")
    scopes = [current, APP] + [s for s in SCOPE_TITLES if s not in (current, APP)]
    for scope in scopes:
        entries = [c for c in COMMANDS if scope in c.scopes]
        if not entries:
            continue
        title = SCOPE_TITLES[scope] + (" (this view)" if scope == current else "")
        table.add_row(Text(title, style="bold underline"), "", "")
        for command in entries:
            table.add_row(_key(command), command.title, command.description)
        table.add_row("", "", "")
    table.add_row("ctrl+p", "Command palette", "Search every action available here")
    return table


class HelpScreen(ModalScreen[None]):
    """Modal help; any of escape, ? or q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(help_table(self.scope))

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "mailq console — keys"

    def action_close(self) -> None:
        self.dismiss()
