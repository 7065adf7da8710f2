"""The webhook body, version 2: what a receiver needs to build a ticket without mailq's storage.

Version 1 (``payload_v1``) carries metadata only. Version 2 keeps every
v1 field where it was and adds, under ``message``: ``in_reply_to``,
``references``, the text and HTML bodies (each cut at ``MAILQ_WEBHOOK_BODY_CHARS``
characters, with a ``truncated`` flag), the attachments (id, display filename,
content type, size, sha256) and, when the store can pre-sign (S3), URLs for the
raw message and each attachment valid ``MAILQ_WEBHOOK_URL_EXPIRY`` seconds
(``null`` otherwise). Signed like v1; docs/webhook.md is the reference.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from . import api
from .config import Settings
from .db import errors_as_mailq
from .models import Attachment, Message, utcnow
from .storage import BlobStore, presigned_url

VERSION = 2


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def payload_v1(message: Message, mailbox_name: str) -> dict[str, Any]:
    """The webhook body: metadata only; the raw message is fetched by id (or sha256) from the store."""
    return {
        "event": "message.new",
        "sent_at": _iso(utcnow()),
        "message": {
            "id": message.id,
            "mailbox_id": message.mailbox_id,
            "mailbox": mailbox_name,
            "folder": message.folder,
            "uidvalidity": message.uidvalidity,
            "uid": message.uid,
            "message_id": message.message_id,
            "subject": message.subject,
            "from": message.from_addr,
            "to": message.to_addrs,
            "cc": message.cc_addrs,
            "date": _iso(message.date),
            "size": message.size,
            "sha256": message.sha256,
            "skipped_reason": message.skipped_reason,
            "created_at": _iso(message.created_at),
        },
    }


def _body(text: str | None, truncated: bool) -> dict[str, Any] | None:
    return None if text is None else {"content": text, "truncated": truncated}


def payload_v2(settings: Settings, store: BlobStore, message: Message, mailbox_name: str) -> dict[str, Any]:
    """The v2 body of one message; a message skipped as oversize has no bodies and no URLs."""
    data = payload_v1(message, mailbox_name)
    data["version"] = VERSION
    expires = settings.webhook_url_expiry
    with errors_as_mailq():
        attachments = list(Attachment.select().where(Attachment.message == message.id).order_by(Attachment.id))
    text = html = raw_url = None
    if message.sha256 is not None:
        bodies = api.bodies_of(
            api.parse_message(api.read_blob(store, message.sha256, f"message {message.id}")), settings.webhook_body_chars
        )
        text, html = _body(bodies.text, bodies.text_truncated), _body(bodies.html, bodies.html_truncated)
        raw_url = presigned_url(store, message.sha256, expires)
    data["message"].update(
        in_reply_to=message.in_reply_to,
        references=message.references,
        text=text,
        html=html,
        attachments=[
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "url": presigned_url(store, a.sha256, expires),
            }
            for a in attachments
        ],
        raw_url=raw_url,
        urls_expire_at=(utcnow() + timedelta(seconds=expires)).isoformat() + "Z" if raw_url else None,
    )
    return data


def webhook_payload(settings: Settings, message: Message, mailbox_name: str) -> dict[str, Any]:
    """The body ``MAILQ_WEBHOOK_PAYLOAD`` asks for (2 by default; 1 for receivers not yet upgraded)."""
    if settings.webhook_payload == "1":
        return payload_v1(message, mailbox_name)
    return payload_v2(settings, api.store_for(settings), message, mailbox_name)
