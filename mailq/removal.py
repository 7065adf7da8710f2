"""Deleting a mailbox: one function, every step, in an order that is safe to re-run.

1. stop new polls (recurring schedule and any queued poll) so nothing ingests;
2. park the mailbox (paused) in case a running poll finishes meanwhile;
3. delete blobs that no other mailbox's rows reference;
4. delete rows (attachments, messages, folder state, poll runs) and the mailbox last,
   so an interrupted removal finds the mailbox again and finishes the job.
"""

from __future__ import annotations

import logging

from . import schedule
from .config import Settings
from .db import database, errors_as_mailq
from .errors import QueueError
from .models import Attachment, FolderState, Mailbox, Message, OAuthToken, PollRun
from .storage import open_store

log = logging.getLogger("mailq.removal")
_CHUNK = 500


def _orphaned_blobs(mailbox_id: int) -> set[str]:
    """Hashes referenced by this mailbox's rows and by no row of any other mailbox."""
    own_raw = Message.select(Message.sha256).where((Message.mailbox == mailbox_id) & Message.sha256.is_null(False))
    own_att = Attachment.select(Attachment.sha256).join(Message).where(Message.mailbox == mailbox_id)
    own = {r.sha256 for r in own_raw} | {r.sha256 for r in own_att}
    if not own:
        return set()
    still_used: set[str] = set()
    items = sorted(own)
    for i in range(0, len(items), _CHUNK):
        chunk = items[i : i + _CHUNK]
        still_used |= {r.sha256 for r in Message.select(Message.sha256).where((Message.mailbox != mailbox_id) & Message.sha256.in_(chunk))}
        still_used |= {
            r.sha256
            for r in Attachment.select(Attachment.sha256)
            .join(Message)
            .where((Message.mailbox != mailbox_id) & Attachment.sha256.in_(chunk))
        }
    return own - still_used


def _stop_polls(settings: Settings, mailbox_id: int) -> None:
    """Cancel the recurring poll and a queued poll. With Redis down the removal goes on: the
    scheduler's reconcile drops the orphaned schedule, and a poll of a deleted mailbox skips."""
    try:
        schedule.forget(settings, mailbox_id)
    except QueueError as exc:
        log.warning("mailbox %s: schedule not cancelled (%s); the scheduler drops it at its next reconcile", mailbox_id, exc)


def remove_mailbox(settings: Settings, mailbox: Mailbox) -> dict[str, int]:
    """Remove ``mailbox`` and everything it owns; returns counts of what went."""
    _stop_polls(settings, mailbox.id)
    with errors_as_mailq():
        Mailbox.update(paused=True).where(Mailbox.id == mailbox.id).execute()
        blobs = _orphaned_blobs(mailbox.id)
        open_store(settings).delete_many(sorted(blobs))  # S3: DeleteObjects, 1,000 keys a request
        with database.atomic():
            msg_ids = Message.select(Message.id).where(Message.mailbox == mailbox.id)
            attachments = Attachment.delete().where(Attachment.message.in_(msg_ids)).execute()
            messages = Message.delete().where(Message.mailbox == mailbox.id).execute()
            FolderState.delete().where(FolderState.mailbox == mailbox.id).execute()
            PollRun.delete().where(PollRun.mailbox == mailbox.id).execute()
            OAuthToken.delete().where(OAuthToken.mailbox == mailbox.id).execute()
            Mailbox.delete().where(Mailbox.id == mailbox.id).execute()
    return {"messages": messages, "attachments": attachments, "blobs": len(blobs)}
