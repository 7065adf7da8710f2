"""Mail arriving continuously (the feeder) and the farm's progress as seen in the database (the watcher).

Every delivered message is unique (an `X-Chaos-Seq` header) and recorded with
its sha256 and delivery time, so the watcher can tell when each one reached
the database: that gives latencies and "caught up" times without guessing.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass

import peewee

from mailq import db
from tests.testbed.dovecot import Dovecot
from tests.testbed.mailgen import make_message

POOL = 64
"""Distinct generated bodies; each delivery gets a unique header on top of one of them."""


@dataclass
class Delivery:
    user: str
    sha256: str
    at: float  # time.monotonic() when the file landed in the maildir


class Feeder:
    """Delivers `rate` messages per second, spread at random over the active users, on a thread."""

    def __init__(self, dovecot: Dovecot, users: list[str], rate: float, seed: int = 0, max_bytes: int = 20_000):
        self.dovecot = dovecot
        self.active = list(users)
        self.rate = rate
        self.rng = random.Random(seed)
        gen = random.Random(seed + 1)
        self.pool = [make_message(gen, i, size_class="small", max_bytes=max_bytes) for i in range(POOL)]
        self.deliveries: list[Delivery] = []
        self.seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _raw(self) -> bytes:
        self.seq += 1
        return f"X-Chaos-Seq: {self.seq}\r\n".encode() + self.pool[self.seq % POOL]

    def deliver(self, user: str, count: int = 1) -> list[Delivery]:
        """Deliver `count` messages to one user now (a flood when count is large)."""
        with self._lock:
            raws = [self._raw() for _ in range(count)]
            self.dovecot.deliver_many((user, raw) for raw in raws)
            now = time.monotonic()
            batch = [Delivery(user, hashlib.sha256(raw).hexdigest(), now) for raw in raws]
            self.deliveries.extend(batch)
        return batch

    def start(self) -> Feeder:
        self._thread = threading.Thread(target=self._run, name="chaos-feeder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        started, sent = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate) - sent
                for _ in range(max(due, 0)):
                    users = self.active
                    if users:
                        self.deliver(self.rng.choice(users))
                    sent += 1
                self._stop.wait(0.05)
        except BaseException as exc:  # surfaced by stop(): a feeder failure invalidates the run
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error is not None:
            raise RuntimeError(f"the feeder failed: {self.error!r}") from self.error

    def by_user(self) -> dict[str, list[Delivery]]:
        out: dict[str, list[Delivery]] = {}
        with self._lock:
            for d in self.deliveries:
                out.setdefault(d.user, []).append(d)
        return out


LOOKBACK = 2000
"""Message ids below the highest seen that are read again (see ``Watcher.poll_once``)."""


class Watcher:
    """Polls the message table every 0.2 s and records when each sha256 first appeared."""

    def __init__(self, period: float = 0.2):
        self.period = period
        self.seen: dict[str, float] = {}  # sha256 -> time.monotonic() first seen
        self.rows = 0
        self.last_id = 0
        self._ids: set[int] = set()
        self.db_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, name="chaos-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        db.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except (peewee.PeeweeException, db.DatabaseError, OSError):
                # Expected while the database is locked or refusing connections (a fault under test).
                self.db_errors += 1
                try:
                    db.close()
                except Exception:
                    pass
            self._stop.wait(self.period)
        try:
            db.close()
        except Exception:
            pass

    def poll_once(self) -> None:
        # PostgreSQL hands out ids when a row is inserted, not when it commits: with several writers a
        # lower id can become visible after a higher one was seen. So look back LOOKBACK ids every time.
        low = max(0, self.last_id - LOOKBACK)
        cursor = db.database.execute_sql("SELECT id, sha256 FROM message WHERE id > %s ORDER BY id" % int(low))
        rows = [(i, sha) for i, sha in cursor.fetchall() if i not in self._ids]
        if not rows:
            return
        now = time.monotonic()
        with self._cond:
            for row_id, sha in rows:
                self._ids.add(row_id)
                self.rows += 1
                self.last_id = max(self.last_id, row_id)
                if sha and sha not in self.seen:
                    self.seen[sha] = now
            self._cond.notify_all()

    def wait_for(self, deliveries: list[Delivery], timeout: float) -> float | None:
        """Wait until every delivery has been seen; the monotonic time of the last one, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [d for d in deliveries if d.sha256 not in self.seen]
                if not missing:
                    return max((self.seen[d.sha256] for d in deliveries), default=time.monotonic())
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def latencies(self, deliveries: list[Delivery]) -> list[float]:
        return [self.seen[d.sha256] - d.at for d in deliveries if d.sha256 in self.seen]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]
