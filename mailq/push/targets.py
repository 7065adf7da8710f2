"""The idler's view of the database: which mailboxes it may push, and how to sign each in.

Loaded in the idler's executor thread (peewee is blocking); the event loop only
sees the frozen ``Target`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from .. import auth, db
from ..config import Settings
from ..db import errors_as_mailq
from ..errors import NotFoundError
from ..models import FolderState, Mailbox
from ..queues import poll_queue_name
from . import leases


@dataclass(frozen=True)
class Target:
    """What the idler needs to hold one mailbox's IDLE connection."""

    id: int
    host: str
    port: int
    security: str
    username: str
    secret: str
    ca_file: str | None
    folder: str
    push: str
    queue: str
    uidnext: int | None
    backing_off: bool
    auth: str = "password"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def same_connection(self, other: Target) -> bool:
        return (self.host, self.port, self.security, self.username, self.secret, self.ca_file, self.folder) == (
            other.host,
            other.port,
            other.security,
            other.username,
            other.secret,
            other.ca_file,
            other.folder,
        )


def oauth_credentials(settings: Settings, mailbox_id: int, rejected: auth.Credentials | None) -> auth.Credentials | None:
    """In the executor thread: an OAuth2 mailbox's credentials now, or after ``rejected`` (None: not worth a retry)."""
    try:
        with errors_as_mailq():
            mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
        if mailbox is None:
            raise NotFoundError(f"mailbox {mailbox_id} was removed")
        return auth.after_rejection(settings, mailbox, rejected) if rejected else auth.credentials(settings, mailbox)
    finally:
        db.close()


def push_folder(folders: list[str]) -> str:
    """The folder pushed for a mailbox: INBOX when polled, else its first folder (the others wait for the poll)."""
    return next((f for f in folders if f.upper() == "INBOX"), folders[0] if folders else "INBOX")


class Targets:
    """Every mailbox an idler may push (push not off, not paused, not parked, server not known to lack IDLE,
    first poll finished).

    A mailbox is pushed from its first finished poll on: that poll syncs whatever is
    there (and finds a wrong password first), and a farm's first start, a first sync
    of every mailbox, would otherwise carry an IDLE login per mailbox at the same time
    (measured: 0.45 s of a 3.4 s first ingest of 100 mailboxes on 2 cores).

    Refreshed every ``TARGETS_REFRESH_S``: one narrow query of (id, updated_at), then
    full rows only for mailboxes that are new or changed, so 10,000 unchanged
    mailboxes cost a few milliseconds, not a full load.
    """

    def __init__(self) -> None:
        self.rows: dict[int, Target] = {}
        self._stamps: dict[int, Any] = {}

    def refresh(self, conn: redis.Redis) -> dict[int, Target]:
        skip = leases.noidle(conn)
        pushable = (Mailbox.push != "off") & (Mailbox.paused == False) & (Mailbox.state != "auth_error")  # noqa: E712
        pushable &= Mailbox.last_poll_at.is_null(False)
        stamps = {mid: at for mid, at in Mailbox.select(Mailbox.id, Mailbox.updated_at).where(pushable).tuples() if mid not in skip}
        changed = [mid for mid, at in stamps.items() if self._stamps.get(mid) != at or mid not in self.rows]
        rows = {mid: t for mid, t in self.rows.items() if mid in stamps}
        for i in range(0, len(changed), 500):
            rows.update(_load(changed[i : i + 500]))
        self.rows, self._stamps = rows, stamps
        return dict(rows)


def _load(ids: list[int]) -> dict[int, Target]:
    mailboxes = list(Mailbox.select().where(Mailbox.id.in_(ids)))
    folders = {m.id: push_folder(m.folders) for m in mailboxes}
    states = FolderState.select(FolderState.mailbox, FolderState.name, FolderState.uidnext).where(FolderState.mailbox.in_(ids))
    uidnext = {(mid, name): value for mid, name, value in states.tuples()}
    return {
        m.id: Target(
            m.id,
            m.host,
            m.port,
            (m.security or "ssl").lower(),
            m.username,
            m.secret,
            m.ca_file,
            folders[m.id],
            m.push,
            poll_queue_name(m.priority),
            uidnext.get((m.id, folders[m.id])),
            m.next_attempt_at is not None,
            m.auth,
        )
        for m in mailboxes
    }
