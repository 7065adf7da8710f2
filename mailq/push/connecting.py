"""How the idler (re)connects one mailbox: the backoff between attempts, the rate gate every
attempt passes, and the open + sign-in + EXAMINE of one connection under the poll path's timeouts."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import crypto
from ..config import Settings
from ..errors import AuthError
from ..imap import ssl_context
from .client import IdleClient
from .targets import Target, oauth_credentials

BACKOFF_MAX_S = 300.0


def backoff(failures: int, rng: random.Random = random) -> float:
    """Seconds before reconnect attempt ``failures``: 1, 2, 4 ... capped, each times 0.5-1.5 (no lockstep)."""
    return min(BACKOFF_MAX_S, 2.0 ** min(failures - 1, 20) * rng.uniform(0.5, 1.5))


class Gate:
    """At most ``rate`` connection attempts per second, first come first served."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0

    async def take(self) -> None:
        now = time.monotonic()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class Connector:
    """Opens and signs in one IDLE connection; ``call`` runs blocking work (token cache, database) off the loop."""

    def __init__(self, settings: Settings, call: Callable[..., Awaitable[Any]]):
        self.settings = settings
        self._call = call
        self._contexts: dict[str, Any] = {}

    def _context(self, target: Target):

        key = target.ca_file or ""
        if key not in self._contexts:

            class _Box:
                ca_file = target.ca_file

            self._contexts[key] = ssl_context(self.settings, _Box())
        return self._contexts[key]

    async def connect(self, client: IdleClient, target: Target) -> None:
        s = self.settings
        context = self._context(target) if target.security in ("ssl", "starttls") else None
        await client.open(target.host, target.port, target.security, context, s.connect_timeout)
        if target.auth == "oauth2":
            await self._sign_in(client, target)
        else:
            password = crypto.decrypt(s, target.secret, f"the password of mailbox {target.id}")
            await client.login(target.username, password, s.read_timeout)
            del password
        if "IDLE" in client.capabilities:
            await client.examine(target.folder, s.read_timeout)

    async def _sign_in(self, client: IdleClient, target: Target) -> None:
        """OAuth2: a token from the same cache and per-mailbox refresh lock the workers use; one retry with a
        forced refresh when the server refuses a cached token (it may have been revoked early)."""
        creds = await self._call(oauth_credentials, self.settings, target.id, None)
        try:
            await client.authenticate(creds.username, creds.mechanism, creds.secret, self.settings.read_timeout, creds.on_rejection)
        except AuthError:
            retry = await self._call(oauth_credentials, self.settings, target.id, creds)
            if retry is None:
                raise
            await client.authenticate(retry.username, retry.mechanism, retry.secret, self.settings.read_timeout, retry.on_rejection)
