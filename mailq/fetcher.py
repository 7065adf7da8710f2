"""Fetch a folder's new messages in bounded batches, one batch ahead, on a background thread.

Fetching is mostly waiting on the socket (the GIL is released), while parsing,
hashing and committing are CPU: running the fetch of batch N+1 while the caller
processes batch N overlaps the two (measured: it is what brings ingest near the
bare fetch rate). At most ``depth`` fetched batches wait in memory, each bounded
by MAILQ_FETCH_BATCH and MAILQ_FETCH_BATCH_BYTES; RFC822.SIZE is fetched first
so an oversize message is never downloaded (its headers are, for the record).

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

UID_CHUNK = 500
"""UIDs per command at most: servers reject very long UID sets (nextcloud/mail#6038)."""

OVERSIZE_HEADERS = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM TO CC DATE IN-REPLY-TO REFERENCES)]"
_DONE = object()


@dataclass
class FetchedBatch:
    """One batch as the server had it: bodies (with sha256) and, for oversize messages, headers."""

    uids: list[int]
    sizes: dict[int, int]
    bodies: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # uid -> (raw, sha256)
    headers: dict[int, bytes] = field(default_factory=dict)  # oversize uid -> header block
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


def _item(data: dict[bytes, Any], prefix: bytes) -> bytes | None:
    for key, value in data.items():
        if isinstance(key, bytes) and key.startswith(prefix):
            return bytes(value) if value is not None else None
    return None


def fetch_batch(session: Session, uids: list[int], sizes: dict[int, int], settings: Settings) -> FetchedBatch:
    limit = settings.max_message_bytes
    batch = FetchedBatch(uids, sizes)
    small = [u for u in uids if sizes[u] <= limit]
    big = [u for u in uids if sizes[u] > limit]
    if small:
        for uid, data in fetch_tolerant(session, small, "BODY.PEEK[]").items():
            raw = _item(data, b"BODY[]")
            if raw is not None and uid in sizes:
                batch.bodies[uid] = (raw, hashlib.sha256(raw).hexdigest())
    if big:
        for uid, data in fetch_tolerant(session, big, OVERSIZE_HEADERS).items():
            if uid in sizes:
                batch.headers[uid] = _item(data, b"BODY[HEADER") or b""
    return batch


class BatchFetcher:
    """Iterate over fetched batches of ``uids`` (ascending); ``close()`` when done or stopping early."""

    def __init__(self, session: Session, uids: list[int], settings: Settings, depth: int = 1):
        self.session, self.uids, self.settings = session, uids, settings
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
                sizes = {uid: int(data.get(b"RFC822.SIZE") or 0) for uid, data in self.session.fetch(window, ["RFC822.SIZE"]).items()}
                present = [u for u in window if u in sizes]
                gone = len(window) - len(present)
                if not present and not self._put(FetchedBatch([], {}, gone=gone)):
                    return
                for i, uids in enumerate(plan_batches(present, sizes, self.settings)):
                    if self._stop.is_set():
                        return
                    batch = fetch_batch(self.session, uids, sizes, self.settings)
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
