"""A mailbox's access token: cached encrypted in the database, refreshed ahead of expiry, one refresh at a time.

Refresh is serialized per mailbox across every process (workers, idlers,
``mailbox test``) by a Redis lock (redis-py's ``Lock``: a random owner token,
a TTL so a killed holder frees it, release only by the owner). Whoever gets
the lock re-reads the cache first: if another process refreshed meanwhile, it
uses that token, so two concurrent refreshes make exactly one call to the
token endpoint (servers that rotate refresh tokens revoke the whole family
when an old one is replayed). A rotated refresh token is stored in the same
transaction as the new access token. Only the lock's name (the mailbox id)
is in Redis, never a token.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import redis

from .. import crypto, keys, metrics
from ..config import Settings
from ..db import database, errors_as_mailq
from ..errors import GrantRevokedError, MailqError, QueueError, TokenEndpointError
from ..models import Mailbox, OAuthApp, OAuthToken, utcnow
from ..queues import connect
from ..text import one_line

if TYPE_CHECKING:
    from .client import Token

log = logging.getLogger(__name__)
_LOCK_MARGIN = 5.0
"""Seconds the refresh lock outlives the longest token call (connect + read timeout)."""


def reauthorize_hint(mailbox: Mailbox) -> str:
    return f"mailq mailbox authorize {mailbox.name}"


def _fresh(row: OAuthToken | None, settings: Settings, now: datetime) -> bool:
    """Fresh: more than the refresh-ahead margin (at most half the token's lifetime) left."""
    if row is None or not row.access_token or row.expires_at is None:
        return False
    lifetime = (row.expires_at - (row.refreshed_at or row.expires_at)).total_seconds()
    ahead = min(settings.oauth_refresh_ahead, max(lifetime, 0) / 2)
    return now < row.expires_at - timedelta(seconds=ahead)


def _cached(settings: Settings, mailbox: Mailbox) -> tuple[OAuthToken | None, str | None]:
    with errors_as_mailq():
        row = OAuthToken.get_or_none(OAuthToken.mailbox == mailbox.id)
    if row is None or not row.access_token:
        return row, None
    try:
        return row, crypto.decrypt(settings, row.access_token, f"the cached token of mailbox {mailbox.name!r}")
    except MailqError:
        return row, None  # key rotated under a running process: just get a new token


def access_token(settings: Settings, mailbox: Mailbox, rejected: str | None = None) -> tuple[str, bool]:
    """(token, came_from_cache). ``rejected``: the server refused that token; get another (once)."""
    row, cached = _cached(settings, mailbox)
    if cached and cached != rejected and _fresh(row, settings, utcnow()):
        return cached, True
    call_time = settings.connect_timeout + settings.read_timeout
    deadline = time.monotonic() + call_time + _LOCK_MARGIN
    lock = _lock(settings, mailbox.id, ttl=call_time + _LOCK_MARGIN)
    if not _acquire(lock, deadline):
        raise TokenEndpointError(
            f"another process is refreshing the token of mailbox {mailbox.name!r} and did not finish within "
            f"{call_time + _LOCK_MARGIN:g}s: transient, will retry"
        )
    try:
        row, cached = _cached(settings, mailbox)
        if cached and cached != rejected and _fresh(row, settings, utcnow()):
            return cached, False  # someone refreshed while we waited: theirs is as new as ours would be
        with errors_as_mailq():
            current = Mailbox.get_by_id(mailbox.id)  # the refresh token may have rotated since we loaded it
        token = _obtain(settings, current, deadline)
        _store(settings, current, token)
        _count(settings, "ok")
        return token.access_token, False
    finally:
        _release(lock)


def _obtain(settings: Settings, mailbox: Mailbox, deadline: float) -> Token:
    """The one network call, its outcome recorded whatever happens."""
    from . import client  # authlib and requests load only when a token is fetched: every process starts faster

    with errors_as_mailq():
        app = OAuthApp.get_by_id(mailbox.oauth_app_id)
    try:
        if mailbox.oauth_grant == "client_credentials":
            return client.client_credentials(settings, app, deadline=deadline)
        secret = crypto.decrypt(settings, mailbox.secret, f"the OAuth2 grant of mailbox {mailbox.name!r}")
        if mailbox.oauth_grant == "service_account":
            return client.service_account(settings, app, secret, mailbox.username, deadline=deadline)
        if not secret:
            raise GrantRevokedError(f"mailbox {mailbox.name!r} is not authorized yet: run `{reauthorize_hint(mailbox)}`")
        return client.refresh(settings, app, secret, deadline=deadline, reauthorize=reauthorize_hint(mailbox))
    except MailqError as exc:
        outcome = "transient" if isinstance(exc, TokenEndpointError) else "revoked" if isinstance(exc, GrantRevokedError) else "failed"
        _record_failure(mailbox.id, outcome, str(exc))
        _count(settings, outcome)
        raise


def _store(settings: Settings, mailbox: Mailbox, token: Token) -> None:
    """New access token and (when rotated) the new refresh token: one transaction."""
    now = utcnow()
    values = {
        OAuthToken.access_token: crypto.encrypt(settings, token.access_token),
        OAuthToken.expires_at: token.expires_at,
        OAuthToken.refreshed_at: now,
        OAuthToken.last_attempt_at: now,
        OAuthToken.last_outcome: "ok",
        OAuthToken.last_error: None,
    }
    with errors_as_mailq(), database.atomic():
        if token.refresh_token and mailbox.oauth_grant == "refresh_token":
            Mailbox.update(secret=crypto.encrypt(settings, token.refresh_token), updated_at=now).where(Mailbox.id == mailbox.id).execute()
        OAuthToken.insert({OAuthToken.mailbox: mailbox.id, **values}).on_conflict(
            conflict_target=[OAuthToken.mailbox], update=values
        ).execute()


def _count(settings: Settings, outcome: str) -> None:
    """The refresh outcome in the shared metrics (never fails the sign-in: metrics.incr logs a Redis error)."""
    metrics.incr(connect(settings), "oauth_refreshes", outcome)


def _record_failure(mailbox_id: int, outcome: str, text: str) -> None:
    now = utcnow()
    values = {OAuthToken.last_attempt_at: now, OAuthToken.last_outcome: outcome, OAuthToken.last_error: one_line(text, limit=500)}
    try:
        with errors_as_mailq():
            OAuthToken.insert({OAuthToken.mailbox: mailbox_id, **values}).on_conflict(
                conflict_target=[OAuthToken.mailbox], update=values
            ).execute()
    except MailqError as exc:
        log.warning("mailbox %s: could not record the refresh outcome: %s", mailbox_id, exc)


def store_grant(settings: Settings, mailbox: Mailbox, refresh_token: str, token: Token | None = None) -> None:
    """A new consent (``authorize``): keep its refresh token (and first access token), end ``auth_error``."""
    now = utcnow()
    with errors_as_mailq(), database.atomic():
        Mailbox.update(
            secret=crypto.encrypt(settings, refresh_token),
            oauth_grant="refresh_token",
            state="ok",
            consecutive_failures=0,
            next_attempt_at=None,
            last_error=None,
            last_error_class=None,
            updated_at=now,
        ).where(Mailbox.id == mailbox.id).execute()
        forget(mailbox.id)
    if token is not None:
        with errors_as_mailq():
            mailbox = Mailbox.get_by_id(mailbox.id)
        _store(settings, mailbox, dataclasses.replace(token, refresh_token=None))  # the refresh token is kept above


def forget(mailbox_id: int) -> None:
    """Drop the cached access token (new credentials: the old token must not be used)."""
    with errors_as_mailq():
        OAuthToken.delete().where(OAuthToken.mailbox == mailbox_id).execute()


def status(mailbox: Mailbox) -> dict[str, object]:
    """What the CLI and console show: expiry and the last refresh's outcome, never the token."""
    with errors_as_mailq():
        row = OAuthToken.get_or_none(OAuthToken.mailbox == mailbox.id)
    iso = lambda d: d.isoformat() + "Z" if d else None  # noqa: E731
    return {
        "token_expires_at": iso(row.expires_at) if row and row.access_token else None,
        "token_refreshed_at": iso(row.refreshed_at) if row else None,
        "last_refresh_at": iso(row.last_attempt_at) if row else None,
        "last_refresh_outcome": row.last_outcome if row else None,
        "last_refresh_error": row.last_error if row else None,
    }


def _lock(settings: Settings, mailbox_id: int, ttl: float):

    return connect(settings).lock(keys.oauth_refresh_lock(mailbox_id), timeout=ttl, sleep=0.05, thread_local=False)


def _acquire(lock, deadline: float) -> bool:
    try:
        return bool(lock.acquire(blocking=True, blocking_timeout=max(deadline - time.monotonic(), 0.01)))
    except redis.RedisError as exc:
        raise QueueError(f"cannot take the token-refresh lock in Redis ({exc}): transient, will retry") from None


def _release(lock) -> None:
    try:
        lock.release()
    except redis.RedisError as exc:  # expired (a very slow call) or Redis gone: its TTL frees it anyway
        log.warning("token-refresh lock %s not released: %s", lock.name, exc)
