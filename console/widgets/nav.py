"""The view tabs line: which view is shown and the number key for each."""

from __future__ import annotations

from rich.text import Text
from textual.events import Click
from textual.widgets import Static

VIEWS = (
    ("overview", "Overview"),
    ("mailboxes", "Mailboxes"),
    ("queues", "Queues & workers"),
    ("failed", "Failed jobs"),
    ("schedule", "Schedule"),
    ("messages", "Messages"),
)


class ViewTabs(Static):
    """A static tab strip; the number keys (or a click) switch views."""

    def __init__(self, current: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = current

    def render(self) -> Text:
        text = Text()
        for number, (name, title) in enumerate(VIEWS, start=1):
            label = f" {number} {title} "
            if name == self.current:
                text.append(label, style="reverse bold")
            else:
                text.append(label, style="dim")
            text.append(" ")
        return text

    async def on_click(self, event: Click) -> None:
        offset = 0
        for number, (name, title) in enumerate(VIEWS, start=1):
            width = len(f" {number} {title} ") + 1
            if offset <= event.x < offset + width:
                await self.app.run_action(f"view({name!r})")
                return
            offset += width
