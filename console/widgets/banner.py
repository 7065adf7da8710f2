"""The banner that says Redis or the database is gone, while the console keeps running."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusBanner(Static):
    """Hidden while everything answers; shows the problem (literally) and that it is retrying."""

    DEFAULT_CLASSES = "-hidden"

    def show_problem(self, problem: str | None, retry_every: float | None) -> None:
        if not problem:
            self.add_class("-hidden")
            self.update("")
            return
        retry = (
            f"  (showing the last data; retrying every {retry_every:g} s)"
            if retry_every
            else "  (showing the last data; live refresh is paused: space resumes, F5 retries)"
        )
        self.update(Text("⚠ ") + Text(problem) + Text(retry))
        self.remove_class("-hidden")
