"""Schedule: rq-scheduler's recurring polls, and where they differ from the database."""

from __future__ import annotations

import time
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from mailq.ops import ScheduleDiff, ScheduledPoll

from .. import commands
from .. import format as fmt
from ..source import Source, describe_failure
from .listing import ListScreen
from .mailbox_actions import resync

COLUMNS = [("job", "Job id"), ("mailbox", "Mailbox"), ("interval", ">Interval"), ("next_run", "Next run"), ("note", "Note")]
SHOW_IDS = 12
"""Diff lines list at most this many ids; the counts are always complete."""
DIFF_EVERY = 30.0
"""Seconds between schedule/database comparisons. The comparison reads every recurring
poll (about 1 s at 10,000 mailboxes); the scheduler itself reconciles every minute."""


def _ids(values: list) -> str:
    shown = ", ".join(str(v) for v in values[:SHOW_IDS])
    return shown + (f" … (+{len(values) - SHOW_IDS:,})" if len(values) > SHOW_IDS else "")


def diff_text(diff: ScheduleDiff) -> Text:
    if not (diff.missing or diff.stale or diff.changed):
        return Text("In step with the database: every enabled mailbox has exactly one recurring poll.", style="green")
    text = Text()
    lines = [
        (diff.missing, "enabled mailbox(es) without a recurring poll: "),
        (diff.stale, "recurring poll(s) for a deleted or disabled mailbox: "),
        (diff.changed, "mailbox(es) whose interval or queue changed: "),
    ]
    for values, label in lines:
        if values:
            if text:
                text.append("\n")
            text.append(f"{len(values):,} ", style="bold yellow")
            text.append(label)
            text.append(fmt.cell(_ids(values), 300))
    text.append("\nPress s to resync.", style="dim")
    return text


def poll_row(poll: ScheduledPoll, now: datetime, stale: set[str], changed: set[int]) -> list:
    if poll.job_id in stale:
        note = Text("no such mailbox" if poll.mailbox_name is None else "mailbox disabled", style="bold yellow")
    elif poll.mailbox_id in changed:
        note = Text("interval/queue changed", style="yellow")
    else:
        note = Text("")
    mailbox = fmt.mailbox(poll.mailbox_name, poll.mailbox_id, id_style="dim")
    interval = Text(f"{poll.interval:,}s", justify="right") if poll.interval else fmt.cell(None)
    return [fmt.cell(poll.job_id, 40), mailbox, interval, fmt.ago(poll.next_run_at, now), note]


class ScheduleScreen(ListScreen):
    """The polls rq-dashboard and rq-exporter cannot show."""

    SCOPE = VIEW = "schedule"
    BINDINGS = commands.bindings("schedule")
    PAGE = 200
    COLUMNS, TABLE_ID = COLUMNS, "schedule"

    def __init__(self) -> None:
        super().__init__()
        self.diff: ScheduleDiff | None = None
        self._diff_read_at = float("-inf")  # monotonic
        self._diff_checked: datetime | None = None
        self._notes: tuple[set[str], set[int]] = (set(), set())  # (stale job ids, changed mailbox ids) of the last diff

    def compose_head(self) -> ComposeResult:
        with Vertical(classes="panel", id="diff-panel"):
            yield Static(id="schedule-diff")

    def on_mount(self) -> None:
        self.query_one("#diff-panel").border_title = "Differences from the database"
        self.query_one("#schedule").border_title = "Recurring polls"
        super().on_mount()

    def read(self, source: Source) -> tuple[list[ScheduledPoll], int]:
        return source.scheduled_polls(offset=self.page_offset, limit=self.PAGE)

    def row_key(self, poll: ScheduledPoll) -> str:
        return poll.job_id

    def cells(self, poll: ScheduledPoll, now: datetime) -> list:
        return poll_row(poll, now, *self._notes)

    def show(self, data: tuple[list[ScheduledPoll], int, datetime]) -> None:
        polls, total, now = data
        if time.monotonic() - self._diff_read_at >= DIFF_EVERY:
            self._diff_read_at = time.monotonic()
            self._compare(self.app.source)
        self._notes = (set(self.diff.stale), set(self.diff.changed)) if self.diff else (set(), set())
        table = self.show_rows(polls, total, now)
        table.border_subtitle = self.page_label()
        panel = self.query_one("#diff-panel")
        panel.border_subtitle = (
            f"checked {fmt.ago(self._diff_checked, now).plain}, every {DIFF_EVERY:g} s" if self._diff_checked else "comparing…"
        )

    @work(thread=True, exclusive=True, group="schedule-diff", exit_on_error=False)
    def _compare(self, source: Source) -> None:
        """The full comparison in its own worker, so the table of polls never waits for it."""
        try:
            with source.session():
                diff: ScheduleDiff | Exception = source.schedule_diff()
        except Exception as exc:  # shown in the panel; the next comparison retries
            diff = exc
        try:
            self.app.call_from_thread(self._show_diff, diff, source.now())
        except RuntimeError:  # the app is shutting down
            pass

    def _show_diff(self, diff: ScheduleDiff | Exception, now: datetime) -> None:
        text = self.query_one("#schedule-diff", Static)
        if isinstance(diff, Exception):
            text.update(Text(f"Could not compare: {describe_failure(diff)[1]}", style="yellow"))
            return
        self.diff, self._diff_checked = diff, now
        text.update(diff_text(diff))
        self.app.refresh_now()  # redraw the notes column with the new differences

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.check_page_action(action)

    def action_resync(self) -> None:
        resync(self.app, then=self._compare_again)

    def _compare_again(self) -> None:
        self._diff_read_at = float("-inf")  # compare on the refresh that follows the resync
