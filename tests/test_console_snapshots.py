"""SVG snapshots of every console view with fixed data and a fixed clock (pytest-textual-snapshot).

Regenerate after an intended change: ``pytest tests/test_console_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from console.app import MailqConsole
from mailq.errors import QueueError
from tests.console_fixtures import FixedSource
from tests.console_helpers import settle

SIZE = (140, 36)


def snap(snap_compare, view: str = "overview", press=(), source: FixedSource | None = None, size=SIZE) -> bool:
    app = MailqConsole(source or FixedSource(), view=view)

    async def before(pilot):
        await settle(pilot)
        for key in press:
            await pilot.press(key)
            await settle(pilot)

    return snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("view", ["overview", "mailboxes", "queues", "failed", "schedule", "messages"])
def test_each_view_draws_the_same_from_fixed_data(snap_compare, view):
    assert snap(snap_compare, view)


def test_mailbox_detail_shows_runs_and_errors(snap_compare):
    assert snap(snap_compare, "mailboxes", press=["down", "down", "enter"])


def test_message_detail_shows_headers_body_and_attachments_literally(snap_compare):
    assert snap(snap_compare, "messages", press=["down", "down", "enter"])


def test_failed_job_detail_shows_the_full_traceback(snap_compare):
    assert snap(snap_compare, "failed", press=["end", "enter"])


def test_requeue_all_asks_with_the_count(snap_compare):
    assert snap(snap_compare, "failed", press=["R"])


def test_mailbox_filter_by_state(snap_compare):
    assert snap(snap_compare, "mailboxes", press=["slash", *"state:failing", "enter"])


def test_help_lists_every_key(snap_compare):
    assert snap(snap_compare, "mailboxes", press=["question_mark"], size=(140, 60))


def test_banner_says_redis_is_down(snap_compare):
    source = FixedSource()
    source.fail = QueueError("Redis unavailable at redis://127.0.0.1:6390/0: Connection refused")
    assert snap(snap_compare, "queues", source=source)
