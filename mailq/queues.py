"""Redis and RQ queues: the one place that knows queue names and how to connect.

Queues are listed in the order workers take them, so high-priority mailboxes
go first and downstream dispatch never starves polls (``default`` is for
operator one-offs). Every Redis failure leaves this module as ``QueueError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlparse

import redis
from rq import Queue

from .config import Settings
from .errors import QueueError

HIGH, EMAIL, WORKFLOW, DEFAULT = "email-high", "email", "workflow", "default"
QUEUE_NAMES: tuple[str, ...] = (HIGH, EMAIL, WORKFLOW, DEFAULT)
"""Every mailq queue, in the order workers take them."""

SOCKET_TIMEOUT = 30.0
"""Seconds any Redis reply may take, except a worker's: RQ blocks in BLPOP for up to ~405 s."""

_clients: dict[tuple[str, int, bool], redis.Redis] = {}


def poll_queue_name(priority: str) -> str:
    """The queue a mailbox's polls go to."""
    return HIGH if priority == "high" else EMAIL


def connect(settings: Settings, *, check: bool = False, blocking: bool = False) -> redis.Redis:
    """A Redis client for ``settings.redis_url`` (cached per process; a forked child gets its own).

    With ``check`` it pings first, so the caller gets one clear ``QueueError``
    instead of a failure deep inside rq. ``blocking`` is for a worker's own
    connection: no read timeout, or its long BLPOP would end the worker.
    """
    key = (settings.redis_url, os.getpid(), blocking)
    client = _clients.get(key)
    if client is None:
        try:
            client = redis.Redis.from_url(
                settings.redis_url, socket_connect_timeout=5, socket_timeout=None if blocking else SOCKET_TIMEOUT, health_check_interval=30
            )
        except ValueError as exc:
            raise QueueError(f"MAILQ_REDIS_URL: {exc}", orig=exc) from None
        _clients[key] = client
    if check:
        with errors_as_queue():
            client.ping()
    return client


def queue(settings: Settings, name: str, connection: redis.Redis | None = None) -> Queue:
    return Queue(name, connection=connection or connect(settings))


def all_queues(settings: Settings, connection: redis.Redis | None = None) -> list[Queue]:
    conn = connection or connect(settings)
    return [Queue(name, connection=conn) for name in QUEUE_NAMES]


def register(conn: redis.Redis) -> None:
    """Make every mailq queue known to rq (``rq info``, dashboards) before its first job arrives."""
    pipe = conn.pipeline(transaction=False)
    for name in QUEUE_NAMES:
        pipe.sadd(Queue.redis_queues_keys, f"{Queue.redis_queue_namespace_prefix}{name}")
    pipe.execute()


def _where(url: str) -> str:
    """The Redis URL without a password, for error messages."""
    parsed = urlparse(url)
    host = parsed.hostname or parsed.path or "?"
    return f"{parsed.scheme}://{host}{':' + str(parsed.port) if parsed.port else ''}{parsed.path if parsed.hostname else ''}"


@contextlib.contextmanager
def errors_as_queue(settings: Settings | None = None) -> Iterator[None]:
    """Turn redis-py errors into ``QueueError`` with a line an operator can act on."""
    try:
        yield
    except redis.exceptions.ConnectionError as exc:
        where = f" at {_where(settings.redis_url)}" if settings else ""
        raise QueueError(f"Redis unavailable{where}: {exc}: check MAILQ_REDIS_URL and that redis-server runs", orig=exc) from None
    except redis.exceptions.TimeoutError as exc:
        raise QueueError(f"Redis timed out: {exc}", orig=exc) from None
    except redis.exceptions.ResponseError as exc:
        raise QueueError(f"Redis refused a command: {exc}", orig=exc) from None
