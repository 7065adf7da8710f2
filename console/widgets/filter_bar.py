"""A one-line search input that appears on `/` and hands focus back to the table."""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """Enter keeps the filter and returns to the table; Escape clears it. Posts ``Applied`` on each change."""

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=True)]

    class Applied(Message):
        def __init__(self, bar: FilterBar, value: str) -> None:
            super().__init__()
            self.bar = bar
            self.value = value

    def __init__(self, placeholder: str, **kwargs) -> None:
        super().__init__(placeholder=placeholder, **kwargs)
        self.add_class("-hidden")

    def on_mount(self) -> None:
        if self.app.is_headless:  # screenshots and tests: the same picture every time
            self.cursor_blink = False

    def open(self) -> None:
        self.remove_class("-hidden")
        self.focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Applied(self, event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value:
            self.add_class("-hidden")
        self.screen.focus_next()

    def action_clear_filter(self) -> None:
        self.value = ""
        self.add_class("-hidden")
        self.screen.focus_next()
