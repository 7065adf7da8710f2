"""Downstream hand-off: new messages go to the user's hook and/or a signed webhook.

The ``dispatch`` job (jobs.py, on the ``workflow`` queue) calls ``deliver``
with one committed batch; outbox.py decides which batches exist. Failures are
retried by RQ (``MAILQ_DISPATCH_RETRY_DELAYS``), then sit in the failed
registry until requeued.

Exactly once per successful call: each message gets ``dispatched_at`` as soon
as it was handed over, and a retried batch skips those. With both a hook and a
webhook, the ids whose hook already ran are kept in the job's meta, so a retry
for a failed webhook does not call the hook again.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import redis

from . import metrics, outbox
from .config import Settings
from .db import errors_as_mailq
from .errors import ConfigError, DispatchError
from .models import Mailbox, Message, utcnow
from .payload import webhook_payload
from .queues import connect

WEBHOOK_TIMEOUT = 15.0
SIGNATURE_HEADER = "X-Mailq-Signature"
VERSION_HEADER = "X-Mailq-Payload-Version"


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


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` over the exact body bytes; receivers compare with ``hmac.compare_digest``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(settings: Settings, data: dict[str, Any]) -> None:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "mailq", "X-Mailq-Message-Id": str(data["message"]["id"])}
    headers[VERSION_HEADER] = str(data.get("version", 1))
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
    done, already, failures, latencies = [], 0, [], []
    for message in rows:
        if message.dispatched_at is not None:
            already += 1
            continue
        try:
            if hook is not None and message.id not in hook_done:
                hook(message.id)
                hook_done.add(message.id)
            if settings.webhook_url:
                post(settings, webhook_payload(settings, message, message.mailbox.name))
        except Exception as exc:  # the user's code: any failure is a failed delivery, retried
            failures.append((message.id, exc))
            continue
        now = utcnow()
        with errors_as_mailq():
            Message.update(dispatched_at=now).where(Message.id == message.id).execute()
        done.append(message.id)
        latencies.append(max((now - message.created_at).total_seconds(), 0.0))
    if job is not None and hook is not None and settings.webhook_url:
        job.meta["hook_done"] = sorted(hook_done - set(done))
        job.save_meta()

    metrics.record_dispatch(connect(settings), latencies, len(failures))
    settled = done + [m for m in message_ids if m not in found]  # delivered, or the row is gone
    try:
        outbox.drop_message_claims(connect(settings), settled)
    except redis.exceptions.RedisError:
        pass  # a leftover claim only matters to the sweep, which checks dispatched_at first
    if failures:
        first_id, first = failures[0]
        raise DispatchError(
            f"{len(failures)} of {len(rows)} message(s) not delivered; message {first_id}: {type(first).__name__}: {first}"
        ) from first
    return {"delivered": len(done), "already": already, "missing": len(message_ids) - len(found)}
