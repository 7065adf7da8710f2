"""Recent messages for the console: one page across mailboxes or for one, and one message in detail."""

from __future__ import annotations

import peewee as pw

from .. import api
from ..config import Settings
from ..db import errors_as_mailq
from ..errors import MailqError, NotFoundError
from ..models import Attachment, Mailbox, Message
from ..outbox import configured
from ..parse import decode_text, split_head
from .types import AttachmentRow, MessageDetail, MessageRow

TEXT_LIMIT = 20_000
"""Characters of the text body the detail shows (a body can be megabytes)."""
COUNT_CAP = 10_000
"""Totals above this are not counted exactly: a count over millions of rows is too slow for a refresh."""
_HEADERS = 200


def _dispatch_state(message: Message, hooked: bool) -> str:
    if message.dispatched_at is not None:
        return "delivered"
    return "pending" if hooked else "none"


def _rows(settings: Settings, messages: list[Message]) -> list[MessageRow]:
    ids = [m.id for m in messages]
    counts: dict[int, int] = {}
    if ids:
        counts = dict(
            Attachment.select(Attachment.message, pw.fn.COUNT(Attachment.id))
            .where(Attachment.message.in_(ids))
            .group_by(Attachment.message)
            .tuples()
        )
    hooked = configured(settings)
    return [
        MessageRow(
            m.id, m.mailbox_id, m.mailbox.name, m.date, m.from_addr, m.subject, m.size, counts.get(m.id, 0), _dispatch_state(m, hooked)
        )
        for m in messages
    ]


def recent_messages(
    settings: Settings, offset: int = 0, limit: int = 200, mailbox_id: int | None = None, text: str | None = None
) -> tuple[list[MessageRow], int]:
    """Newest first; ``text`` matches subject or sender (case-insensitive). The total stops at ``COUNT_CAP``."""
    with errors_as_mailq():
        query = Message.select(Message, Mailbox.name).join(Mailbox)
        if mailbox_id is not None:
            query = query.where(Message.mailbox == mailbox_id)
        if text:
            like = f"%{text}%"
            query = query.where(Message.subject**like | Message.from_addr**like)
        page = list(query.order_by(Message.id.desc()).offset(offset).limit(limit))
        total = query.select(Message.id).limit(COUNT_CAP).count()
        return _rows(settings, page), total


def _headers(raw: bytes) -> list[tuple[str, str]]:
    from email import policy
    from email.parser import BytesHeaderParser

    head = BytesHeaderParser(policy=policy.compat32).parsebytes(split_head(raw)[0])
    found = []
    for name, value in list(head.raw_items())[:_HEADERS]:
        found.append((str(name), decode_text(str(value))))
    return found


def message_detail(settings: Settings, message_id: int) -> MessageDetail:
    """Headers, text body and attachments of one message; a missing blob is reported, not raised."""
    with errors_as_mailq():
        rows = list(Message.select(Message, Mailbox.name).join(Mailbox).where(Message.id == message_id))
        if not rows:
            raise NotFoundError(f"no message with id {message_id}")
        message = rows[0]
        attachments = [
            AttachmentRow(a.id, a.filename, a.content_type, a.size)
            for a in Attachment.select().where(Attachment.message == message_id).order_by(Attachment.id)
        ]
    headers: list[tuple[str, str]] = []
    text, truncated, problem = None, False, None
    if message.sha256 is None:
        problem = f"not stored: {message.skipped_reason or 'skipped'}"
    else:
        try:
            raw = api.raw(message_id, settings)
            headers = _headers(raw)
            bodies = api.bodies_of(api.parse_message(raw), TEXT_LIMIT)
            text, truncated = bodies.text, bodies.text_truncated
        except MailqError as exc:
            problem = str(exc)
    return MessageDetail(_rows(settings, [message])[0], message.folder, headers, text, truncated, attachments, problem)
