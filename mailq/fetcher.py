"""Fetch a folder's new messages in bounded batches, one batch ahead, on a background thread.

Fetching is mostly waiting on the socket (the GIL is released), while parsing,
hashing and committing are CPU: running the fetch of batch N+1 while the caller
processes batch N overlaps the two (measured: it is what brings ingest near the
bare fetch rate). At most ``depth`` fetched batches wait in memory, each bounded
by MAILQ_FETCH_BATCH and MAILQ_FETCH_BATCH_BYTES; RFC822.SIZE is fetched first
so an oversize message is never downloaded (its headers are, for the record).

The sizes are not trusted: the wire refuses any literal well over the size
announced for its message before reading it (``wire.Expect``), so a batch
holds at most about the bytes it was planned for; and a body whose length
differs from its RFC822.SIZE is never stored as the message: it is fetched
again as ``BINARY.PEEK[]`` where the server has BINARY, and recorded as
skipped (with the reason) if that does not match either.

The session is used by the fetch thread only while iterating; ``close()``
stops it between two commands (never mid-response) and joins it, so the session
is consistent for the next folder.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .errors import ProtocolError
from .imap import Session
from .wire import Expect

UID_CHUNK = 500
"""UIDs per command at most: servers reject very long UID sets (nextcloud/mail#6038)."""

OVERSIZE_HEADERS = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM TO CC DATE IN-REPLY-TO REFERENCES)]"
HEADER_LIMIT = 1024 * 1024
"""Largest header block read for an oversize message."""
ESTIMATE_TOLERANCE = 10
"""Without BINARY, a body within 1/10 of its RFC822.SIZE is accepted: some servers (Exchange) only estimate the size."""
_DONE = object()


@dataclass
class FetchedBatch:
    """One batch as the server had it: bodies (with sha256) and, for oversize messages, headers."""

    uids: list[int]
    sizes: dict[int, int]
    bodies: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # uid -> (raw, sha256)
    headers: dict[int, bytes] = field(default_factory=dict)  # oversize uid -> header block
    refused: dict[int, str] = field(default_factory=dict)  # uid -> why its body is not stored
    known: list[int] = field(default_factory=list)  # UIDs that already have a row (a refused literal): not fetched
    gone: int = 0  # UIDs of the window that were expunged before their sizes were read


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def plan_batches(uids: list[int], sizes: dict[int, int], settings: Settings) -> Iterable[list[int]]:
    """Consecutive groups bounded by MAILQ_FETCH_BATCH messages and MAILQ_FETCH_BATCH_BYTES bytes."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes[uid] if sizes[uid] <= settings.max_message_bytes else 0
        if batch and (len(batch) >= settings.fetch_batch or total + size > settings.fetch_batch_bytes):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def fetch_tolerant(session: Session, uids: list[int], item: str) -> dict[int, dict[bytes, Any]]:
    """FETCH that treats Exchange's "Some of the requested messages no longer exist" as partial success."""
    try:
        return session.fetch(uids, [item])
    except ProtocolError as exc:
        if "no longer exist" not in str(exc).lower():
            raise
        if len(uids) == 1:
            return {}
    found: dict[int, dict[bytes, Any]] = {}
    for uid in uids:
        found.update(fetch_tolerant(session, [uid], item))
    return found


def _literal(data: dict[bytes, Any], prefix: bytes) -> bytes | None:
    """The value of the first item named ``prefix...``, only if it is a string (a number or list is no body)."""
    for key, value in data.items():
        if isinstance(key, bytes) and key.startswith(prefix):
            return bytes(value) if isinstance(value, (bytes, bytearray)) else None
    return None


def _sizes_of(session: Session, window: list[int]) -> tuple[dict[int, int], dict[int, int], dict[int, str]]:
    """RFC822.SIZE of each UID present: (uid -> size, seq -> uid, uid -> why it has no usable size)."""
    sizes: dict[int, int] = {}
    seqs: dict[int, int] = {}
    bad: dict[int, str] = {}
    for uid, data in session.fetch(window, ["RFC822.SIZE"]).items():
        value = data.get(b"RFC822.SIZE")
        if isinstance(data.get(b"SEQ"), int):
            seqs[data[b"SEQ"]] = uid
        if isinstance(value, int) and value >= 0:
            sizes[uid] = value
        else:
            sizes[uid] = 0
            bad[uid] = f"the server sent no valid RFC822.SIZE ({value!r:.40}): not fetched"
    return sizes, seqs, bad


def _size_matches(got: int, announced: int, exact: bool) -> bool:
    return got == announced if exact else abs(got - announced) <= announced // ESTIMATE_TOLERANCE


def _mismatch(got: int | None, announced: int, how: str) -> str:
    sent = "no message body" if got is None else f"{got} bytes"
    return f"the server announced {announced} bytes (RFC822.SIZE) but sent {sent} for it ({how}): not stored"


def _bodies(session: Session, uids: list[int], sizes: dict[int, int], seqs: dict[int, int], settings: Settings, batch: FetchedBatch):
    """BODY.PEEK[] of ``uids``; a body that does not match its size is fetched again as BINARY.PEEK[] or refused."""
    binary = session.has("BINARY")
    expect = Expect({u: sizes[u] for u in uids}, seqs, settings.max_message_bytes)
    with session.expecting(expect):
        fetched = fetch_tolerant(session, uids, "BODY.PEEK[]")
    wrong: dict[int, int | None] = {}
    for uid, data in fetched.items():
        if uid not in expect.sizes:
            continue  # an unrequested message
        raw = _literal(data, b"BODY[]")
        if raw is not None and _size_matches(len(raw), sizes[uid], exact=binary):
            batch.bodies[uid] = (raw, hashlib.sha256(raw).hexdigest())
        else:
            wrong[uid] = None if raw is None else len(raw)
    if wrong and binary:
        again = Expect({u: sizes[u] for u in wrong}, seqs, settings.max_message_bytes)
        with session.expecting(again):
            refetched = fetch_tolerant(session, sorted(wrong), "BINARY.PEEK[]")
        for uid, data in refetched.items():
            raw = _literal(data, b"BINARY[]")
            if uid in wrong and raw is not None and len(raw) == sizes[uid]:
                batch.bodies[uid] = (raw, hashlib.sha256(raw).hexdigest())
                del wrong[uid]
    for uid, got in wrong.items():
        batch.refused[uid] = _mismatch(got, sizes[uid], "BODY.PEEK[] and BINARY.PEEK[]" if binary else "BODY.PEEK[]")


def fetch_batch(
    session: Session,
    uids: list[int],
    sizes: dict[int, int],
    settings: Settings,
    seqs: dict[int, int] | None = None,
    known: set[int] | frozenset[int] = frozenset(),
    bad_sizes: dict[int, str] | None = None,
) -> FetchedBatch:
    limit = settings.max_message_bytes
    batch = FetchedBatch(uids, sizes)
    batch.known = [u for u in uids if u in known]
    for uid in uids:
        if bad_sizes and uid in bad_sizes and uid not in known:
            batch.refused[uid] = bad_sizes[uid]
    todo = [u for u in uids if u not in known and u not in batch.refused]
    small = [u for u in todo if sizes[u] <= limit]
    big = [u for u in todo if sizes[u] > limit]
    if small:
        _bodies(session, small, sizes, seqs or {}, settings, batch)
    if big:
        expect = Expect({u: sizes[u] for u in big}, seqs or {}, HEADER_LIMIT, per_message=lambda _s: HEADER_LIMIT, what="header block")
        with session.expecting(expect):
            for uid, data in fetch_tolerant(session, big, OVERSIZE_HEADERS).items():
                if uid in expect.sizes:
                    batch.headers[uid] = _literal(data, b"BODY[HEADER") or b""
    return batch


class BatchFetcher:
    """Iterate over fetched batches of ``uids`` (ascending); ``close()`` when done or stopping early."""

    def __init__(self, session: Session, uids: list[int], settings: Settings, depth: int = 1, known: set[int] | None = None):
        self.session, self.uids, self.settings = session, uids, settings
        self.known = frozenset(known or ())
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailq-fetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for window in _chunks(self.uids, UID_CHUNK):
                if self._stop.is_set():
                    return
                sizes, seqs, bad = _sizes_of(self.session, [u for u in window if u not in self.known])
                sizes.update({u: 0 for u in window if u in self.known})
                present = [u for u in window if u in sizes]
                gone = len(window) - len(present)
                if not present and not self._put(FetchedBatch([], {}, gone=gone)):
                    return
                for i, uids in enumerate(plan_batches(present, sizes, self.settings)):
                    if self._stop.is_set():
                        return
                    batch = fetch_batch(self.session, uids, sizes, self.settings, seqs, self.known, bad)
                    batch.gone = gone if i == 0 else 0
                    if not self._put(batch):
                        return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def __iter__(self) -> Iterator[FetchedBatch]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop after the command in flight and wait for the thread (bounded by the read timeout)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.05)

    def __enter__(self) -> BatchFetcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
