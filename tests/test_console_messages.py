"""The console's messages view and message detail: fixed data through Pilot, then the real ops on a real database."""

from __future__ import annotations

from console.app import MailqConsole
from console.screens.mailbox_detail import MailboxScreen
from console.screens.message_detail import MessageScreen
from console.source import OpsSource
from console.widgets.keyed_table import KeyedTable
from mailq import ops
from mailq.models import Attachment, Message, utcnow
from mailq.poll import poll_mailbox
from tests.console_fixtures import HOSTILE, FixedSource
from tests.console_helpers import settle, sync, table_keys

from .imap_helpers import add_mailbox
from .test_messages_out import MULTIPART, hostile_box  # noqa: F401

SIZE = (140, 36)


def _text(app, selector: str) -> str:
    """What a Static shows, rendered by rich as plain text (escapes stay visible as text)."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=300, color_system=None, legacy_windows=False)
    console.print(app.screen.query_one(selector).content)
    return console.file.getvalue()


@sync
async def test_the_messages_view_lists_newest_first_filters_and_opens_a_literal_detail():
    app = MailqConsole(FixedSource(), view="messages")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        assert table_keys(table) == [str(i) for i in range(112, 100, -1)]
        await pilot.press("slash", *"invoice", "enter")
        await settle(pilot)
        assert table_keys(table) == ["112", "106"]
        assert app.focused is table
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen) and app.screen.message_id == 112
        headers, body = _text(app, "#message-headers"), _text(app, "#message-body")
        assert "[bold red]x[/]" in headers and "\\x1b[31mred" in headers and "\x1b" not in headers
        assert "shown literally: subject [bold red]x[/] \\x1b[31mred" in body and "\x1b" not in body
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert table.row_count == 12


@sync
async def test_a_mailbox_detail_shows_its_recent_messages_and_enter_opens_one():
    app = MailqConsole(FixedSource(), view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # mailbox 2
        await settle(pilot)
        assert isinstance(app.screen, MailboxScreen)
        recent = app.screen.query_one("#mailbox-messages", KeyedTable)
        assert table_keys(recent) == ["110", "107", "104", "101"]
        recent.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MessageScreen) and app.screen.message_id == 110
        assert "r.pdf" in _text(app, "#message-attachments")


def test_the_real_ops_read_a_polled_message_and_its_page(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.deliver_many([(user, MULTIPART)] + [(user, b"Subject: plain " + str(i).encode() + b"\r\n\r\nbody\r\n") for i in range(3)])
    box = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    poll_mailbox(settings, box.id)
    rows, total = ops.recent_messages(settings, limit=2)
    assert total == 4 and [r.subject for r in rows] == ["plain 2", "plain 1"] and rows[0].dispatch == "none"
    (parts,), n = ops.recent_messages(settings, text="PARTS", mailbox_id=box.id)
    assert n == 1 and parts.attachments == 1 and parts.mailbox_name == box.name
    detail = OpsSource(settings.replace(hook="x:y")).message_detail(parts.id)
    assert ("Subject", "parts") in detail.headers and detail.text == "Hello text é" and detail.row.dispatch == "pending"
    assert [(a.filename, a.content_type, a.size) for a in detail.attachments] == [("../../r.pdf", "application/pdf", 9)]
    Message.update(dispatched_at=utcnow()).where(Message.id == parts.id).execute()
    assert ops.recent_messages(settings, text="parts")[0][0].dispatch == "delivered"
    skipped = Message.create(mailbox=box, folder="INBOX", uidvalidity=1, uid=99, size=10**9, skipped_reason="too big")
    assert ops.message_detail(settings, skipped.id).problem == "not stored: too big"
    assert Attachment.select().count() == 1
    assert HOSTILE  # the fixed data's hostile text is what the Pilot tests look for


def test_every_hostile_message_has_a_detail_and_nothing_raw_reaches_the_screen(hostile_box, settings):
    from mailq.text import literal

    mailbox, _ = hostile_box
    rows, total = ops.recent_messages(settings, limit=500, mailbox_id=mailbox.id)
    assert total == len(rows) >= 40
    for row in rows:
        detail = ops.message_detail(settings, row.id)  # never raises on hostile input
        assert detail.problem is None, (row.id, detail.problem)
        shown = [literal(v) for _, v in detail.headers] + [literal(detail.text or "", newlines=True)]
        assert not any(c in s for s in shown for c in ("\x1b", "\x9b", "\x07"))
