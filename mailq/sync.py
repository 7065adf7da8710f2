"""Folder sync: every message stored exactly once, nothing lost.

Per (mailbox, folder) the database keeps UIDVALIDITY, ``last_uid`` (the highest
UID actually stored) and, once caught up, UIDNEXT and HIGHESTMODSEQ. One pass:

1. With CONDSTORE, one STATUS: unchanged UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ
   mean nothing to do. Otherwise EXAMINE (read-only; bodies are fetched with
   ``BODY.PEEK[]``, so nothing is ever flagged, moved or deleted).
2. A new UIDVALIDITY voids the stored UIDs: the folder is fetched again and each
   message that matches a stored row of the folder by sha256 (Message-ID and
   size for rows skipped as oversize) moves that row to its new UID instead of
   inserting. A row is matched once, so two identical copies stay two rows.
   Matching is stateless (rows still carrying another UIDVALIDITY), so a resync
   may span polls and survive crashes.
3. New UIDs come from ``UID SEARCH UID last+1:*`` minus the ``n:*`` artefact (it
   always yields the highest UID), sorted.
4. RFC822.SIZE first; oversize messages become rows with a skipped reason, and
   so do messages whose body the server did not really send (a literal far
   over its announced size, refused unread and ending the poll; a body whose
   length does not match): a UID that already has a row is never fetched
   again, so the next poll moves past it.
5. Batches (count and bytes bounded, UID sets sent in chunks; fetched one batch
   ahead by ``fetcher.BatchFetcher``): blobs written and flushed first, then ONE
   transaction inserts the rows idempotently (unique on
   mailbox+folder+uidvalidity+uid) and advances ``last_uid``. A crash before the
   commit re-fetches the batch, a crash after it never does.
6. A budget (messages, seconds) bounds one poll; the rest waits for the next.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from . import hot_sql
from . import parse as mime
from .config import Settings
from .db import database, errors_as_mailq, insert_rows
from .errors import ProtocolError, ResponseRefusedError
from .fetcher import BatchFetcher, FetchedBatch
from .imap import Session
from .models import Attachment, FolderState, Mailbox, Message, utcnow
from .storage import BlobBatch, BlobStore

log = logging.getLogger(__name__)

_INSERT_CHUNK = 50  # rows per INSERT statement (SQLite's bound-variable limit)


@dataclass
class Budget:
    """How much one poll may still do; shared by all folders of the poll."""

    messages: int
    deadline: float  # time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        return cls(settings.poll_budget_messages, time.monotonic() + settings.poll_budget_seconds)

    def spent(self) -> bool:
        return self.messages <= 0 or time.monotonic() >= self.deadline


@dataclass
class FolderResult:
    folder: str
    new_ids: list[int] = field(default_factory=list)
    skipped: int = 0
    moved: int = 0  # rows re-attached to new UIDs after a UIDVALIDITY change
    unchanged: bool = False  # skipped by the CONDSTORE check
    more_pending: bool = False

    @property
    def new(self) -> int:
        return len(self.new_ids)


@dataclass
class _Item:
    """One UID of a batch on its way to a row."""

    uid: int
    size: int
    raw: bytes | None = None
    sha256: str | None = None
    parsed: mime.Parsed | None = None
    skipped_reason: str | None = None
    match_id: int | None = None  # resync: existing row that becomes this UID
    known: bool = False  # already has a row (recorded as refused by an earlier poll): only moves last_uid


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def folder_state(mailbox_id: int, folder: str) -> FolderState:
    state = hot_sql.folder_state(mailbox_id, folder)  # the hot path: SQL built once
    with errors_as_mailq():
        if state is None:
            FolderState.insert(mailbox=mailbox_id, name=folder).on_conflict_ignore().execute()
            state = FolderState.get((FolderState.mailbox == mailbox_id) & (FolderState.name == folder))
    return state


def _since(mailbox: Mailbox, resyncing: bool) -> date | None:
    """The date window while a folder is catching up (initial sync policy), else None."""
    policy = (mailbox.initial_sync or "all").lower()
    if policy.startswith("since:"):
        try:
            return date.fromisoformat(policy[6:])
        except ValueError:
            return None
    if policy == "new" and resyncing and mailbox.created_at:
        return mailbox.created_at.date()  # "new" never imports history, even after a UIDVALIDITY change
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sync_folder(
    session: Session,
    store: BlobStore,
    settings: Settings,
    mailbox: Mailbox,
    folder: str,
    budget: Budget,
    on_batch: Callable[[list[int]], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    on_work: Callable[[], None] | None = None,
) -> FolderResult:
    """Bring one folder up to date within ``budget``; IMAP errors propagate as mailq errors.

    ``on_work()`` runs once the folder turns out to need more than its STATUS
    (the unchanged path writes nothing and calls nothing).
    """
    result = FolderResult(folder)
    state = folder_state(mailbox.id, folder)
    modseq = None
    if session.has("CONDSTORE"):
        status = session.status(folder, ["UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"])
        modseq = _int(status.get(b"HIGHESTMODSEQ"))
        if (
            state.highestmodseq is not None
            and modseq == state.highestmodseq
            and _int(status.get(b"UIDNEXT")) == state.uidnext
            and _int(status.get(b"UIDVALIDITY")) == state.uidvalidity
        ):
            result.unchanged = True
            return result
    if on_work:
        on_work()
    info = session.examine(folder)
    uidvalidity = _int(info.get(b"UIDVALIDITY"))
    if uidvalidity is None:
        raise ProtocolError(f"{mailbox.host} sent no UIDVALIDITY for folder {folder!r}: cannot sync it safely")
    uidnext = _int(info.get(b"UIDNEXT"))
    exists = _int(info.get(b"EXISTS")) or 0

    resyncing = False
    if state.uidvalidity is None and (mailbox.initial_sync or "all").lower() == "new":
        last = (uidnext - 1) if uidnext else (max(session.search(["UID", "*"]) or [0]) if exists else 0)
        _save_state(state, uidvalidity=uidvalidity, last_uid=max(last, 0), uidnext=uidnext, highestmodseq=modseq, last_synced_at=utcnow())
        return result
    if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
        log.warning(
            "mailbox %s folder %r: UIDVALIDITY %s -> %s, resyncing without duplicates", mailbox.id, folder, state.uidvalidity, uidvalidity
        )
        _save_state(state, uidvalidity=uidvalidity, last_uid=0, highestmodseq=None, last_synced_at=None)
    elif state.uidvalidity is None:
        _save_state(state, uidvalidity=uidvalidity)
    with errors_as_mailq():
        resyncing = (
            Message.select()
            .where((Message.mailbox == mailbox.id) & (Message.folder == folder) & (Message.uidvalidity != uidvalidity))
            .exists()
        )

    criteria: list[Any] = ["UID", f"{state.last_uid + 1}:*"]
    since = _since(mailbox, resyncing) if state.last_synced_at is None else None
    if since:
        criteria += ["SINCE", since]
    uids = [u for u in session.search(criteria) if u > state.last_uid] if exists else []
    todo = uids[: max(budget.messages, 0)]
    result.more_pending = len(todo) < len(uids)

    pending: _Prepared | None = None
    claimed: set[int] = set()  # resync: rows already paired with a new UID in this pass
    known = _recorded_uids(mailbox, folder, uidvalidity, todo)
    try:
        with BatchFetcher(session, todo, settings, known=known) as fetched:
            for batch in fetched:
                # Pipeline: batch N+1 is being fetched (thread) while batch N is parsed and its blobs written,
                # then batch N-1 commits. Commits stay in UID order, each after its own blobs are durable.
                prepared = _prepare(store, mailbox, folder, uidvalidity, batch, resyncing, claimed)
                if pending is not None:
                    _finish(pending, mailbox, folder, state, uidvalidity, result, on_batch, heartbeat)
                pending = prepared
                budget.messages -= len(batch.uids) + batch.gone
                if budget.spent():
                    break
    except ResponseRefusedError as exc:
        # The connection is gone; keep what is complete, record the refused message once, then fail the poll.
        if pending is not None:
            _finish(pending, mailbox, folder, state, uidvalidity, result, on_batch, heartbeat)
        if exc.uid is not None and exc.uid in todo and exc.uid not in known:
            _record_refused(mailbox, folder, uidvalidity, exc.uid, str(exc))
        raise
    if pending is not None:
        _finish(pending, mailbox, folder, state, uidvalidity, result, on_batch, heartbeat)
    if todo and state.last_uid < todo[-1] and budget.spent():
        result.more_pending = True
    if not result.more_pending:
        _save_state(state, uidnext=uidnext, highestmodseq=modseq, last_synced_at=utcnow())
    elif state.highestmodseq is not None:
        _save_state(state, highestmodseq=None)
    return result


def _recorded_uids(mailbox: Mailbox, folder: str, uidvalidity: int, uids: list[int]) -> set[int]:
    """UIDs of ``uids`` that already have a row under ``uidvalidity`` (a message refused by an earlier poll)."""
    if not uids:
        return set()
    here = (Message.mailbox == mailbox.id) & (Message.folder == folder) & (Message.uidvalidity == uidvalidity)
    with errors_as_mailq():
        return {r.uid for r in Message.select(Message.uid).where(here & (Message.uid >= uids[0]) & (Message.uid <= uids[-1]))}


def _record_refused(mailbox: Mailbox, folder: str, uidvalidity: int, uid: int, reason: str) -> None:
    """A skipped row for a message whose answer was refused; ``last_uid`` stays, the earlier UIDs are fetched next time."""
    item = _Item(uid, 0, skipped_reason=reason[:1000])
    with errors_as_mailq(), database.atomic():
        insert_rows(Message, [_row(mailbox, folder, uidvalidity, item, utcnow())], ignore_conflicts=True)
    log.warning("mailbox %s folder %r UID %s recorded as skipped: %s", mailbox.id, folder, uid, reason)


@dataclass
class _Prepared:
    """A fetched and parsed batch whose blobs are being written."""

    items: dict[int, _Item]
    blobs: BlobBatch


def _prepare(
    store: BlobStore, mailbox: Mailbox, folder: str, uidvalidity: int, batch: FetchedBatch, resyncing: bool, claimed: set[int]
) -> _Prepared:
    """Pair a fetched batch with stored rows when resyncing, parse it and start its blob writes."""
    items: dict[int, _Item] = {uid: _Item(uid, len(raw), raw=raw, sha256=sha) for uid, (raw, sha) in batch.bodies.items()}
    for uid, header in batch.headers.items():
        items[uid] = _Item(
            uid,
            batch.sizes[uid],
            parsed=mime.parse(header),
            skipped_reason=f"larger than MAILQ_MAX_MESSAGE_BYTES ({batch.sizes[uid]} bytes): not fetched",
        )
    for uid, reason in batch.refused.items():
        items[uid] = _Item(uid, batch.sizes.get(uid, 0), skipped_reason=reason)
    for uid in batch.known:
        items[uid] = _Item(uid, 0, known=True)
    if resyncing:
        _match_existing(mailbox, folder, uidvalidity, items, claimed)
    blobs = BlobBatch(store)  # flushed in _finish, before the rows commit
    for item in items.values():
        if item.raw is None or item.match_id is not None:
            continue
        blobs.put(item.raw, item.sha256)
        item.parsed = mime.parse(item.raw)
        for att in item.parsed.attachments:
            blobs.put(att.data, att.sha256)
            att.data = b""  # written: only its hash and size are needed from here on
    for item in items.values():
        item.raw = None
    batch.bodies.clear()  # the bytes are in the blob store now; the batch waiting to commit holds rows only
    return _Prepared(items, blobs)


def _finish(
    prepared: _Prepared,
    mailbox: Mailbox,
    folder: str,
    state: FolderState,
    uidvalidity: int,
    result: FolderResult,
    on_batch: Callable[[list[int]], None] | None,
    heartbeat: Callable[[], None] | None,
) -> None:
    """Wait until the batch's blobs are durable, then commit its rows and tell the caller."""
    prepared.blobs.wait()
    items = prepared.items
    new_ids = _commit(mailbox, folder, state, uidvalidity, items)
    result.new_ids.extend(new_ids)
    result.skipped += sum(1 for i in items.values() if i.skipped_reason and i.match_id is None and not i.known)
    result.moved += sum(1 for i in items.values() if i.match_id is not None)
    if on_batch and new_ids:
        on_batch(new_ids)
    if heartbeat:
        heartbeat()


def _match_existing(mailbox: Mailbox, folder: str, uidvalidity: int, items: dict[int, _Item], claimed: set[int]) -> None:
    """Resync: pair fetched messages with stored rows of another UIDVALIDITY, each row at most once."""
    old = (Message.mailbox == mailbox.id) & (Message.folder == folder) & (Message.uidvalidity != uidvalidity)
    with errors_as_mailq():
        shas = sorted({i.sha256 for i in items.values() if i.sha256})
        by_sha: dict[str, list[int]] = {}
        for chunk in _chunks(shas, 200):
            for row in Message.select(Message.id, Message.sha256).where(old & Message.sha256.in_(chunk)).order_by(Message.id):
                by_sha.setdefault(row.sha256, []).append(row.id)
        skipped_rows: dict[tuple, list[int]] = {}
        if any(i.skipped_reason and not i.known for i in items.values()):
            for row in (
                Message.select(Message.id, Message.message_id, Message.size).where(old & Message.sha256.is_null()).order_by(Message.id)
            ):
                skipped_rows.setdefault((row.message_id, row.size), []).append(row.id)
    for uid in sorted(items):
        item = items[uid]
        if item.known:
            continue
        if item.sha256:
            candidates = by_sha.get(item.sha256)
        else:
            candidates = skipped_rows.get((item.parsed.message_id if item.parsed else None, item.size))
        while candidates and candidates[0] in claimed:
            candidates.pop(0)
        if candidates:
            item.match_id = candidates.pop(0)
            claimed.add(item.match_id)


def _row(mailbox: Mailbox, folder: str, uidvalidity: int, item: _Item, now) -> dict[str, Any]:
    p = item.parsed or mime.Parsed()
    return {
        "mailbox": mailbox.id,
        "folder": folder,
        "uidvalidity": uidvalidity,
        "uid": item.uid,
        "message_id": p.message_id,
        "subject": p.subject,
        "from_addr": p.from_addr,
        "to_addrs": p.to_addrs,
        "cc_addrs": p.cc_addrs,
        "date": p.date,
        "in_reply_to": p.in_reply_to,
        "references": p.references,
        "preview": p.preview,
        "size": item.size,
        "sha256": item.sha256,
        "skipped_reason": item.skipped_reason,
        "parse_defects": json.dumps(p.defects, ensure_ascii=False) if p.defects else None,
        "created_at": now,
    }


def _commit(mailbox: Mailbox, folder: str, state: FolderState, uidvalidity: int, items: dict[int, _Item]) -> list[int]:
    """ONE transaction: move matched rows, insert the rest idempotently, advance last_uid. Returns new row ids."""
    if not items:
        return []
    now = utcnow()
    here = (Message.mailbox == mailbox.id) & (Message.folder == folder) & (Message.uidvalidity == uidvalidity)
    with errors_as_mailq(), database.atomic():
        uids = sorted(items)
        existing = {r.uid for r in Message.select(Message.uid).where(here & Message.uid.in_(uids))}
        for item in items.values():
            if item.match_id is not None and item.uid not in existing:
                Message.update(uidvalidity=uidvalidity, uid=item.uid).where(Message.id == item.match_id).execute()
        fresh = [items[u] for u in uids if u not in existing and items[u].match_id is None and not items[u].known]
        for chunk in _chunks(fresh, _INSERT_CHUNK):
            insert_rows(Message, [_row(mailbox, folder, uidvalidity, i, now) for i in chunk], ignore_conflicts=True)
        ids: dict[int, int] = {}
        if fresh:
            fresh_uids = [i.uid for i in fresh]
            ids = {r.uid: r.id for r in Message.select(Message.id, Message.uid).where(here & Message.uid.in_(fresh_uids))}
        attachments = [
            {"message": ids[i.uid], "filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}
            for i in fresh
            if i.uid in ids and i.parsed
            for a in i.parsed.attachments
        ]
        for chunk in _chunks(attachments, 150):
            insert_rows(Attachment, chunk)
        top = max(uids)
        FolderState.update(last_uid=top, uidvalidity=uidvalidity).where(
            (FolderState.id == state.id) & (FolderState.last_uid < top)
        ).execute()
        state.last_uid = max(state.last_uid, top)
    return [ids[i.uid] for i in fresh if i.uid in ids]


def _save_state(state: FolderState, **changes: Any) -> None:
    with errors_as_mailq():
        for key, value in changes.items():
            setattr(state, key, value)
        FolderState.update(changes).where(FolderState.id == state.id).execute()
