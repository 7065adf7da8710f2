"""Downstream hand-off: new messages go to the user's hook and/or a signed webhook.

One ``dispatch`` job per committed batch on the ``workflow`` queue (a forking
worker costs ~24 ms per job, more than a poll of an idle mailbox, so never one
job per message), and none at all unless ``MAILQ_HOOK`` or ``MAILQ_WEBHOOK_URL``
is set. Failures are retried by RQ (``MAILQ_DISPATCH_RETRY_DELAYS``), then sit in
the failed registry until requeued.

Exactly once per successful call: each message gets ``dispatched_at`` as soon
as it was handed over, and a retried batch skips those. With both a hook and a
webhook, the ids whose hook already ran are kept in the job's meta, so a retry
for a failed webhook does not call the hook again.

Outbox: a batch is claimed in Redis (``locks.claim_messages``) in the same
pipeline that enqueues its job. The sweep (run by ``mailq scheduler``) finds
rows committed but not dispatched whose claim is missing or whose job vanished
(a crash between commit and enqueue, a flushed Redis) and dispatches them;
rows whose job still exists (queued, waiting for a retry, failed) are left to it.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
from rq import Retry

from . import locks
from .config import Settings
from .db import errors_as_mailq
from .errors import ConfigError, MailqError
from .models import Mailbox, Message, utcnow
from .queues import WORKFLOW, queue

log = logging.getLogger("mailq.dispatch")

WEBHOOK_TIMEOUT = 15.0
SIGNATURE_HEADER = "X-Mailq-Signature"
SWEEP_GRACE = timedelta(seconds=60)
"""Rows younger than this are still being enqueued by their poll; the sweep leaves them."""
SWEEP_WINDOW = timedelta(days=1)
"""The sweep looks back this far; older undispatched rows (e.g. from before a hook was configured) are left alone."""
DISPATCH_FUNC = "mailq.jobs.dispatch"


class DispatchError(MailqError):
    """Raised when the hook or webhook failed for some messages of a batch (RQ retries the job)."""


def configured(settings: Settings) -> bool:
    return bool(settings.hook or settings.webhook_url)


def enqueue_batch(settings: Settings, conn: redis.Redis, message_ids: list[int]) -> str:
    """Claim the messages and enqueue their dispatch job, atomically (one MULTI)."""
    job_id = f"dsp-{min(message_ids)}-{uuid.uuid4().hex[:8]}"
    delays = settings.retry_delays
    pipe = conn.pipeline()
    queue(settings, WORKFLOW, conn).enqueue_call(
        DISPATCH_FUNC,
        args=(sorted(message_ids),),
        job_id=job_id,
        timeout=settings.job_timeout,
        retry=Retry(max=len(delays), interval=delays),
        result_ttl=600,
        description=f"dispatch {len(message_ids)} message(s)",
        pipeline=pipe,
    )
    locks.claim_messages(pipe, message_ids, job_id)  # after: rq opens the MULTI itself
    pipe.execute()
    return job_id


def batch_enqueuer(settings: Settings, conn: redis.Redis) -> Callable[[list[int]], None]:
    """The poll's ``on_batch``: never fails the poll; the sweep covers a batch Redis refused."""

    def on_batch(message_ids: list[int]) -> None:
        if not message_ids:
            return
        try:
            enqueue_batch(settings, conn, list(message_ids))
        except redis.exceptions.RedisError as exc:
            log.warning("could not enqueue dispatch of %d message(s), the sweep will: %s", len(message_ids), exc)

    return on_batch


def load_hook(spec: str) -> Callable[[int], Any]:
    module_name, _, attr = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"MAILQ_HOOK: cannot load {spec!r}: {exc}", orig=exc) from None
    if not callable(target):
        raise ConfigError(f"MAILQ_HOOK: {spec!r} is not callable")
    return target


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def payload(message: Message, mailbox_name: str) -> dict[str, Any]:
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


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` over the exact body bytes; receivers compare with ``hmac.compare_digest``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(settings: Settings, data: dict[str, Any]) -> None:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "mailq", "X-Mailq-Message-Id": str(data["message"]["id"])}
    if settings.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(settings.webhook_secret, body)
    request = urllib.request.Request(settings.webhook_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        raise DispatchError(f"webhook answered HTTP {exc.code} {exc.reason}", orig=exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DispatchError(f"webhook unreachable: {getattr(exc, 'reason', exc)}", orig=exc) from None


def deliver(settings: Settings, message_ids: list[int], job=None) -> dict[str, int]:
    """Hand each not-yet-dispatched message over; raise ``DispatchError`` if any failed."""
    hook = load_hook(settings.hook) if settings.hook else None
    hook_done: set[int] = set(job.meta.get("hook_done", [])) if job is not None else set()
    with errors_as_mailq():
        rows = list(Message.select(Message, Mailbox.name).join(Mailbox).where(Message.id.in_(message_ids)).order_by(Message.id))
    found = {m.id for m in rows}
    done, already, failures = [], 0, []
    for message in rows:
        if message.dispatched_at is not None:
            already += 1
            continue
        try:
            if hook is not None and message.id not in hook_done:
                hook(message.id)
                hook_done.add(message.id)
            if settings.webhook_url:
                post(settings, payload(message, message.mailbox.name))
        except Exception as exc:  # the user's code: any failure is a failed delivery, retried
            failures.append((message.id, exc))
            continue
        with errors_as_mailq():
            Message.update(dispatched_at=utcnow()).where(Message.id == message.id).execute()
        done.append(message.id)
    if job is not None and hook is not None and settings.webhook_url:
        job.meta["hook_done"] = sorted(hook_done - set(done))
        job.save_meta()
    from .queues import connect

    settled = done + [m for m in message_ids if m not in found]  # delivered, or the row is gone
    try:
        locks.drop_message_claims(connect(settings), settled)
    except redis.exceptions.RedisError:
        pass  # a leftover claim only matters to the sweep, which checks dispatched_at first
    if failures:
        first_id, first = failures[0]
        raise DispatchError(
            f"{len(failures)} of {len(rows)} message(s) not delivered; message {first_id}: {type(first).__name__}: {first}"
        ) from first
    return {"delivered": len(done), "already": already, "missing": len(message_ids) - len(found)}


def sweep(settings: Settings, conn: redis.Redis, *, limit: int = 5000) -> int:
    """Enqueue dispatch for committed rows that no live job covers; returns how many rows."""
    if not configured(settings):
        return 0
    now = utcnow()
    with errors_as_mailq():
        ids = [
            r.id
            for r in Message.select(Message.id)
            .where(Message.dispatched_at.is_null() & (Message.created_at >= now - SWEEP_WINDOW) & (Message.created_at <= now - SWEEP_GRACE))
            .order_by(Message.id)
            .limit(limit)
        ]
    if not ids:
        return 0
    claims = locks.message_claims(conn, ids)
    alive = locks.jobs_alive(conn, {c for c in claims.values() if c != locks.DROPPED})
    orphans = [m for m in ids if claims.get(m) != locks.DROPPED and claims.get(m) not in alive]
    for i in range(0, len(orphans), settings.fetch_batch):
        enqueue_batch(settings, conn, orphans[i : i + settings.fetch_batch])
    if orphans:
        log.info("outbox sweep: dispatching %d message(s) that no job covered", len(orphans))
    return len(orphans)


def clean_claims(settings: Settings, conn: redis.Redis, cursor: int = 0) -> int:
    """Drop one page of claims that can no longer matter (row dispatched, gone, or out of the window
    with no live job); returns the next cursor (0 when a full pass is done)."""
    cursor, page = locks.scan_message_claims(conn, cursor)
    if not page:
        return cursor
    alive = locks.jobs_alive(conn, {c for c in page.values() if c != locks.DROPPED})
    with errors_as_mailq():
        rows = {r.id: r for r in Message.select(Message.id, Message.dispatched_at, Message.created_at).where(Message.id.in_(list(page)))}
    oldest = utcnow() - SWEEP_WINDOW
    dead = [
        m
        for m, owner in page.items()
        if m not in rows or rows[m].dispatched_at is not None or (owner not in alive and rows[m].created_at < oldest)
    ]
    locks.drop_message_claims(conn, dead)
    return cursor
