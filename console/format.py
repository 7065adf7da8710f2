"""Cell formatting shared by every view: relative times, counts, states, literal text.

Everything that came from mail or a server goes through :func:`cell` so it is
rendered as ``rich.text.Text`` (never markup) with control characters neutralised.
Relative times take ``now`` from the data source, so snapshots use a fixed clock.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from mailq.states import PAUSED, State
from mailq.text import literal, one_line, span

DASH = "—"

STATE_STYLES = {
    State.OK: "green",
    State.FAILING: "yellow",
    State.AUTH_ERROR: "bold red",
    PAUSED: "dim",
}


def cell(value: object, limit: int | None = 120, style: str = "") -> Text:
    """Untrusted text as a table cell: one line, bounded, shown literally."""
    if value is None or value == "":
        return Text(DASH, style="dim")
    return Text(one_line(value, limit=limit or 10_000), style=style)


def mailbox(name: str | None, mailbox_id: int | None, id_style: str = "") -> Text:
    """A mailbox by name; ``#id`` when only its id is known (deleted since); a dash when neither is."""
    if name:
        return cell(name, 40)
    return Text(f"#{mailbox_id}", style=id_style) if mailbox_id is not None else cell(None)


def block(value: object) -> Text:
    """Untrusted multi-line text (a traceback): newlines kept, control characters escaped."""
    return Text(literal(value, newlines=True))


def ago(when: datetime | None, now: datetime) -> Text:
    """'12s ago', or 'in 40s' for a future time; a dash when unknown."""
    if when is None:
        return Text(DASH, style="dim")
    delta = (now - when).total_seconds()
    if delta < 0:
        return Text(f"in {span(delta)}")
    return Text(f"{span(delta)} ago")


def seconds(value: float | None, stale_after: float | None = None) -> Text:
    if value is None:
        return Text(DASH, style="dim")
    return Text(span(value), style="bold red" if stale_after is not None and value > stale_after else "")


def count(value: int | None, warn: bool = False) -> Text:
    """A right-aligned count with thousands separators; highlighted when ``warn`` and non-zero."""
    if value is None:
        return Text(DASH, style="dim", justify="right")
    return Text(f"{value:,}", style="bold red" if warn and value else "", justify="right")


def state(value: str | None) -> Text:
    name = value or "?"
    return Text(name, style=STATE_STYLES.get(name, ""))


def size(n: int) -> Text:
    """Bytes for people: B, KB, MB."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return Text(f"{n / scale:.1f} {unit}")
    return Text(f"{n} B")


def timestamp(when: datetime | None) -> Text:
    if when is None:
        return Text(DASH, style="dim")
    return Text(when.strftime("%Y-%m-%d %H:%M:%S"))
