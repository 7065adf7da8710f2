"""Keeping running polls' claims alive: one daemon thread per process, not one per poll.

The same thread ticks the poll groups' watchdogs (``watch``): a group whose
current poll runs past its patience hands the rest of its mailboxes on.

Starting, waking and joining a thread for every poll cost about a third of an
idle poll's CPU in the worker (profile in docs/bench.md: the GIL hand-over on
``Event.set`` and ``join``). Here a single thread, started on first use in each
process (a forked work-horse gets its own), wakes every ``TICK`` seconds and
renews each registered claim whose last renewal is ``ttl / 3`` old. A poll
registers on entry and unregisters on exit: two dictionary operations, no
thread hand-over. A killed process takes the thread with it, so its claims
still expire within ``lock_ttl``.
"""

from __future__ import annotations

import os
import threading
import time

import redis

from .claims import adopt as renew
from .errors import LockLost

TICK = 1.0
"""Seconds between the thread's looks at its claims: the granularity of renewals (ttl is >= 5 s)."""
CHECK_EVERY = 1.0
"""``check()`` asks Redis at most this often; in between it trusts the last renewal (the claim outlives it by ttl)."""


class Renewer:
    """One running poll's claim, renewed in the background; ``check()`` raises ``LockLost`` once it is gone.

    The same interface as before (a context manager with ``check`` and ``beat``)
    so callers did not change.
    """

    def __init__(self, conn: redis.Redis, mailbox_id: int, token: str, ttl: float):
        self.conn, self.mailbox_id, self.token, self.ttl = conn, mailbox_id, token, ttl
        self.lost = False
        self.renewed_at = time.monotonic()  # the caller has just adopted (renewed) the claim

    def __enter__(self) -> Renewer:
        _registry().add(self)
        return self

    def __exit__(self, *exc) -> None:
        _registry().discard(self)

    def beat(self) -> None:
        try:
            if renew(self.conn, self.mailbox_id, self.token, self.ttl):
                self.renewed_at = time.monotonic()
            else:
                self.lost = True
        except redis.exceptions.RedisError:
            pass  # Redis blip: the next beat retries; the TTL covers the gap

    def check(self) -> None:
        if not self.lost and time.monotonic() - self.renewed_at >= CHECK_EVERY:
            self.beat()
        if self.lost:
            raise LockLost(f"mailbox {self.mailbox_id}: another poll took over (this poll's claim expired)")


class _Registry:
    """The claims of this process's running polls and the one thread renewing them."""

    def __init__(self) -> None:
        self.claims: set[Renewer] = set()
        self.watchers: set = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="mailq-claims", daemon=True)
        self.thread.start()

    def add(self, claim: Renewer) -> None:
        with self.lock:
            self.claims.add(claim)

    def discard(self, claim: Renewer) -> None:
        with self.lock:
            self.claims.discard(claim)

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with self.lock:
                due = [c for c in self.claims if now - c.renewed_at >= c.ttl / 3]
                watchers = list(self.watchers)
            for claim in due:
                claim.beat()
            for watcher in watchers:
                watcher.tick(now)


def watch(watcher) -> None:
    """Call ``watcher.tick(monotonic_now)`` about every ``TICK`` seconds until ``unwatch``; it must not raise."""
    registry = _registry()
    with registry.lock:
        registry.watchers.add(watcher)


def unwatch(watcher) -> None:
    registry = _registry()
    with registry.lock:
        registry.watchers.discard(watcher)


_registries: dict[int, _Registry] = {}
_start_lock = threading.Lock()


def _registry() -> _Registry:
    """This process's registry, started on first use (after a fork the child starts its own)."""
    pid = os.getpid()
    registry = _registries.get(pid)
    if registry is None:
        with _start_lock:
            registry = _registries.get(pid)
            if registry is None:
                registry = _registries[pid] = _Registry()
    return registry


__all__ = ["LockLost", "Renewer", "unwatch", "watch"]
