"""mailq's Python API for hooks and applications: stored messages, their bytes, bodies, attachments.

A hook (``MAILQ_HOOK``) is called with a message id inside a worker; an
application elsewhere uses the same functions with the same settings (database
and storage URLs in its environment), over any blob store. Results are frozen
dataclasses; every failure is a ``MailqError``: ``NotFoundError`` for an unknown
id, ``NotStoredError`` for a row whose bytes were skipped, ``StorageError`` when
a blob is missing or does not match its sha256, ``DatabaseError``.

    from mailq import api
    info = api.get_message(42)
    text = api.bodies(42).text
    for att in info.attachments:
        data = api.attachment_bytes(att.id)
    for info in api.messages_after(cursor):   # resumable: remember the last id
        ...
"""

from __future__ import annotations

import email.parser
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage

from . import config, db
from .config import Settings
from .db import errors_as_mailq
from .errors import NotFoundError, NotStoredError
from .models import Attachment, Mailbox, Message
from .storage import BlobStore, StorageError, open_store, sha256_hex

__all__ = [
    "AttachmentInfo",
    "Bodies",
    "MessageInfo",
    "attachment",
    "attachment_bytes",
    "bodies",
    "email_message",
    "get_message",
    "messages_after",
    "raw",
]


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment; ``filename`` is the sender's, for display only: never use it as a path."""

    id: int
    message_id: int
    filename: str | None
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MessageInfo:
    """A stored message's metadata (header text decoded, dates naive UTC). ``sha256`` is None when skipped."""

    id: int
    mailbox_id: int
    mailbox: str
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None
    subject: str | None
    from_addr: str | None
    to_addrs: str | None
    cc_addrs: str | None
    date: datetime | None
    in_reply_to: str | None
    references: str | None
    size: int
    sha256: str | None
    skipped_reason: str | None
    created_at: datetime
    dispatched_at: datetime | None
    attachments: tuple[AttachmentInfo, ...] = ()

    @property
    def stored(self) -> bool:
        """Whether the raw bytes are in the store (False for a message skipped as oversize)."""
        return self.sha256 is not None


@dataclass(frozen=True)
class Bodies:
    """The text and HTML bodies as str (None when the message has none), each cut at ``limit`` characters."""

    text: str | None
    html: str | None
    text_truncated: bool = False
    html_truncated: bool = False


_stores: dict[str, BlobStore] = {}


def _settings(settings: Settings | None) -> Settings:
    """The given settings or the process's, with the database bound (a no-op when already bound)."""
    settings = settings or config.get()
    db.bind(settings.database_url)
    return settings


def store_for(settings: Settings) -> BlobStore:
    """One store object per storage URL for this process (an S3 client is not free to build)."""
    store = _stores.get(settings.storage_url)
    if store is None:
        store = _stores[settings.storage_url] = open_store(settings)
    return store


def _attachment_info(a: Attachment) -> AttachmentInfo:
    return AttachmentInfo(a.id, a.message_id, a.filename, a.content_type, a.size, a.sha256)


def _info(m: Message, mailbox_name: str, attachments: list[Attachment]) -> MessageInfo:
    return MessageInfo(
        id=m.id,
        mailbox_id=m.mailbox_id,
        mailbox=mailbox_name,
        folder=m.folder,
        uidvalidity=m.uidvalidity,
        uid=m.uid,
        message_id=m.message_id,
        subject=m.subject,
        from_addr=m.from_addr,
        to_addrs=m.to_addrs,
        cc_addrs=m.cc_addrs,
        date=m.date,
        in_reply_to=m.in_reply_to,
        references=m.references,
        size=m.size,
        sha256=m.sha256,
        skipped_reason=m.skipped_reason,
        created_at=m.created_at,
        dispatched_at=m.dispatched_at,
        attachments=tuple(_attachment_info(a) for a in attachments),
    )


def _infos(rows: list[Message]) -> list[MessageInfo]:
    """Rows (selected with their mailbox) with their attachments, in two queries."""
    found: dict[int, list[Attachment]] = {m.id: [] for m in rows}
    if found:
        for att in Attachment.select().where(Attachment.message.in_(list(found))).order_by(Attachment.id):
            found[att.message_id].append(att)
    return [_info(m, m.mailbox.name, found[m.id]) for m in rows]


def _select():
    return Message.select(Message, Mailbox.name).join(Mailbox)


def get_message(message_id: int, settings: Settings | None = None) -> MessageInfo:
    """One message's metadata and attachment list."""
    _settings(settings)
    with errors_as_mailq():
        rows = list(_select().where(Message.id == message_id))
        if not rows:
            raise NotFoundError(f"no message with id {message_id}: see `mailq messages list`")
        return _infos(rows)[0]


def read_blob(store: BlobStore, sha256: str, what: str) -> bytes:
    """A blob's bytes, checked against its name: a damaged file is an error, never handed out."""
    data = store.get(sha256)
    if sha256_hex(data) != sha256:
        raise StorageError(f"{what}: blob {sha256} is damaged (its content no longer matches its sha256): restore it from a backup")
    return data


def raw(message_id: int, settings: Settings | None = None) -> bytes:
    """The exact bytes the IMAP server sent (``BODY[]``), checked against their sha256."""
    settings = _settings(settings)
    with errors_as_mailq():
        row = Message.get_or_none(Message.id == message_id)
    if row is None:
        raise NotFoundError(f"no message with id {message_id}: see `mailq messages list`")
    if row.sha256 is None:
        raise NotStoredError(f"message {message_id} was not stored: {row.skipped_reason or 'skipped'}")
    return read_blob(store_for(settings), row.sha256, f"message {message_id}")


def parse_message(data: bytes) -> EmailMessage:
    """Bytes as the standard library's ``EmailMessage`` (``policy.default``: decoded headers, ``get_body``)."""
    return email.parser.BytesParser(policy=policy.default).parsebytes(data)


def email_message(message_id: int, settings: Settings | None = None) -> EmailMessage:
    """The message parsed by the standard library (lenient: defects are listed on ``.defects``)."""
    return parse_message(raw(message_id, settings))


def _content(part) -> str:
    """A text part as str: its declared charset, else UTF-8 with replacement (mail lies about charsets)."""
    try:
        value = part.get_content()
        if isinstance(value, str):
            return value
    except Exception:  # unknown charset, broken encoding: fall back below
        pass
    data = part.get_payload(decode=True) or b""
    return data.decode("utf-8", "replace")


def _cut(text: str | None, limit: int | None) -> tuple[str | None, bool]:
    if text is None or limit is None or len(text) <= limit:
        return text, False
    return text[:limit], True


def bodies_of(message: EmailMessage, limit: int | None = None) -> Bodies:
    """The first text/plain and text/html bodies that are not attachments."""
    found: dict[str, str | None] = {}
    for kind in ("plain", "html"):
        try:
            part = message.get_body(preferencelist=(kind,))
        except Exception:
            part = None
        found[kind] = _content(part) if part is not None else None
    text, text_cut = _cut(found["plain"], limit)
    html, html_cut = _cut(found["html"], limit)
    return Bodies(text, html, text_cut, html_cut)


def bodies(message_id: int, limit: int | None = None, settings: Settings | None = None) -> Bodies:
    """The text and HTML bodies, each at most ``limit`` characters (with a ``*_truncated`` flag)."""
    return bodies_of(email_message(message_id, settings), limit)


def attachment(attachment_id: int, settings: Settings | None = None) -> AttachmentInfo:
    """One attachment's metadata."""
    _settings(settings)
    with errors_as_mailq():
        row = Attachment.get_or_none(Attachment.id == attachment_id)
    if row is None:
        raise NotFoundError(f"no attachment with id {attachment_id}: see `mailq messages show MESSAGE_ID`")
    return _attachment_info(row)


def attachment_bytes(attachment_id: int, settings: Settings | None = None) -> bytes:
    """The attachment decoded (transfer encoding undone), checked against its sha256."""
    info = attachment(attachment_id, settings)
    return read_blob(store_for(_settings(settings)), info.sha256, f"attachment {attachment_id}")


def dated_since(since: datetime):
    """The filter behind ``since``: dated on or after it (Date header, else the time it was stored)."""
    return (Message.date >= since) | (Message.date.is_null() & (Message.created_at >= since))


def messages_after(
    cursor: int = 0,
    *,
    mailbox_id: int | None = None,
    since: datetime | None = None,
    batch: int = 200,
    settings: Settings | None = None,
) -> Iterator[MessageInfo]:
    """Messages with an id above ``cursor``, oldest id first, read ``batch`` at a time.

    Ids only grow, so an application that stores the last id it handled
    resumes exactly where it stopped. ``since`` keeps messages dated (Date
    header, else stored time) on or after it (naive UTC).
    """
    _settings(settings)
    while True:
        with errors_as_mailq():
            query = _select().where(Message.id > cursor)
            if mailbox_id is not None:
                query = query.where(Message.mailbox == mailbox_id)
            if since is not None:
                query = query.where(dated_since(since))
            page = _infos(list(query.order_by(Message.id).limit(batch)))
        yield from page
        if len(page) < batch:
            return
        cursor = page[-1].id
