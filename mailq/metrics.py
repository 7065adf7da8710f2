"""Counters and histograms kept in Redis, so any process on any host can serve them (``mailq metrics``).

Workers add to one Redis hash per poll or dispatch batch (one pipelined round
trip, no reads); the exporter reads the hash with one HGETALL per scrape. Values
survive a restart of the exporter and add up across hosts; a flushed Redis
resets them, which Prometheus's ``rate()`` treats as a counter reset. Recording
never fails the work it measures: a Redis error is logged and dropped.

A family is declared once in ``COUNTERS`` or ``HISTOGRAMS`` and recorded with
``incr`` (OAuth refreshes) or a ``record_*`` helper; push connections are a
gauge the exporter reads from the idlers' own state in Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import peewee as pw
import redis

from . import keys
from .db import errors_as_mailq
from .keys import KEY_PREFIX
from .models import Message

DEFAULT_PORT = 9808
"""The exporter's port (``mailq metrics --port``), declared here so that its --help needs no exporter."""

log = logging.getLogger("mailq.metrics")

KEY = f"{KEY_PREFIX}metrics"

# name (without mailq_ and _total) -> (label name or None, label values always exported (as 0 until seen), help)
COUNTERS: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "polls": ("outcome", ("ok", "partial", "error", "auth_error", "skipped"), "Polls finished, by outcome."),
    "messages_ingested": (None, (), "Messages stored with their bytes."),
    "ingested_bytes": (None, (), "Bytes of raw messages stored."),
    "messages_skipped": ("reason", ("oversize",), "Messages recorded without their bytes."),
    "dispatches": ("outcome", ("delivered", "failed"), "Messages handed to the hook/webhook (delivered), or failed attempts."),
    "oauth_refreshes": (
        "outcome",
        ("ok", "transient", "revoked", "failed"),
        "OAuth2 token-endpoint calls by outcome (revoked: re-authorize; transient: retried with backoff).",
    ),
}

# name (without mailq_ and _seconds) -> (bucket upper bounds, help)
HISTOGRAMS: dict[str, tuple[tuple[float, ...], str]] = {
    "poll_duration": ((0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0), "Time a poll took, sign-in to last commit."),
    "dispatch_latency": (
        (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
        "Time from a message's commit to its successful hand-over.",
    ),
}


def _field(name: str, label: str | None = None) -> str:
    return f"c:{name}:{label or ''}"


def _observe(pipe, name: str, values: Iterable[float]) -> None:
    bounds = HISTOGRAMS[name][0]
    for value in values:
        index = next((i for i, b in enumerate(bounds) if value <= b), len(bounds))
        pipe.hincrby(KEY, f"h:{name}:{index}", 1)
        pipe.hincrbyfloat(KEY, f"h:{name}:sum", value)


def _send(conn: redis.Redis, fill) -> None:
    """Best effort: a metric lost to a Redis blip is logged, never fails a poll. ``conn`` may be a
    pipeline its caller sends (a poll's end: metrics, schedule and claim in one round trip)."""
    try:
        with keys.batch(conn) as pipe:
            fill(pipe)
    except redis.exceptions.RedisError as exc:
        log.warning("could not record metrics: %s", exc)


def incr(conn: redis.Redis, name: str, label: str | None = None, amount: int = 1) -> None:
    """Add to a counter declared in ``COUNTERS``."""
    if name not in COUNTERS:
        raise KeyError(f"undeclared metric {name!r}: add it to mailq.metrics.COUNTERS")
    _send(conn, lambda pipe: pipe.hincrby(KEY, _field(name, label), amount))


def record_poll(conn: redis.Redis, outcome: str, duration_s: float, stored: int, stored_bytes: int, skipped: int) -> None:
    """One finished poll: its outcome, duration, and what it stored."""

    def fill(pipe) -> None:
        pipe.hincrby(KEY, _field("polls", outcome), 1)
        _observe(pipe, "poll_duration", [duration_s])
        if stored:
            pipe.hincrby(KEY, _field("messages_ingested"), stored)
            pipe.hincrby(KEY, _field("ingested_bytes"), stored_bytes)
        if skipped:
            pipe.hincrby(KEY, _field("messages_skipped", "oversize"), skipped)

    _send(conn, fill)


def record_dispatch(conn: redis.Redis, latencies_s: list[float], failed: int) -> None:
    """One dispatch batch: a latency per delivered message, and how many failed."""

    def fill(pipe) -> None:
        if latencies_s:
            pipe.hincrby(KEY, _field("dispatches", "delivered"), len(latencies_s))
            _observe(pipe, "dispatch_latency", latencies_s)
        if failed:
            pipe.hincrby(KEY, _field("dispatches", "failed"), failed)

    if latencies_s or failed:
        _send(conn, fill)


def read(conn: redis.Redis) -> dict[str, float]:
    """Every recorded value, by hash field (the exporter's one read)."""
    return {k.decode(): float(v) for k, v in conn.hgetall(KEY).items()}


class IngestCounter:
    """Wraps a poll's ``on_batch``: sums what each committed batch stored, then calls the wrapped one."""

    def __init__(self, inner=None):
        self.inner = inner
        self.stored = 0
        self.bytes = 0

    def __call__(self, message_ids: list[int]) -> None:

        try:
            with errors_as_mailq():
                n, size = (
                    Message.select(pw.fn.COUNT(Message.id), pw.fn.SUM(Message.size))
                    .where(Message.id.in_(list(message_ids)) & Message.sha256.is_null(False))
                    .tuples()
                    .get()
                )
            self.stored += n or 0
            self.bytes += int(size or 0)
        except Exception as exc:  # counting must never cost a batch its dispatch
            log.warning("could not count an ingested batch: %s", exc)
        if self.inner is not None:
            self.inner(message_ids)
