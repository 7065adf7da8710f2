"""Messages ingested in the last hour, with a sparkline of the per-minute rate."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static


class IngestPanel(Vertical):
    """Total for the hour and a 60-minute sparkline (oldest minute on the left)."""

    def compose(self) -> ComposeResult:
        yield Static(id="ingest-total")
        yield Sparkline([], id="ingest-spark")
        with Horizontal(id="ingest-axis"):
            yield Static("60 min ago", classes="axis-left")
            yield Static("now", classes="axis-right")

    def show(self, total: int, per_minute: list[int]) -> None:
        peak = max(per_minute, default=0)
        self.query_one("#ingest-total", Static).update(
            Text.assemble(
                (f"{total:,}", "bold"),
                " messages in the last hour  ",
                (f"(peak {peak:,}/min, now {per_minute[-1] if per_minute else 0:,}/min)", "dim"),
            )
        )
        self.query_one(Sparkline).data = [float(v) for v in per_minute] or [0.0]
