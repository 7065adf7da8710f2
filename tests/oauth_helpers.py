"""Fixtures for the OAuth2 tests: the local authorization server (a stand-in for Google and
Microsoft, see tests/oauth_server.py) and a Dovecot whose ``oauth2`` passdb checks every
token there, plus helpers that register apps and OAuth2 mailboxes."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailq import mailboxes
from mailq.models import Mailbox
from mailq.oauth import apps
from tests.helpers import UserPool, serve
from tests.oauth_server import AuthServer
from tests.testbed.dovecot import Dovecot

_USERS = UserPool("oa", 300)
_next_app = itertools.count()


@pytest.fixture(scope="session")
def auth_server_session():
    with AuthServer() as server:
        yield server


@pytest.fixture
def auth_server(auth_server_session):
    """The session's authorization server, healthy again for each test (mode, token lifetime, counters)."""
    server = auth_server_session
    server.mode, server.access_ttl, server.rotate, server.consent_user = "ok", 3600, True, None
    server.calls.clear()
    server.refreshes.clear()
    yield server
    server.mode = "ok"


@pytest.fixture(scope="session")
def oauth_dovecot(tmp_path_factory, auth_server_session):
    """A private Dovecot taking passwords and XOAUTH2/OAUTHBEARER, tokens introspected at the auth server."""
    server = Dovecot(tmp_path_factory.mktemp("dovecot-oauth"), oauth2_introspection_url=auth_server_session.introspect_url)
    server.add_users(_USERS.passwords())
    yield from serve(server)


@pytest.fixture
def oauth_user(oauth_dovecot):
    """A fresh IMAP user on the OAuth Dovecot (its password exists only so Dovecot's userdb knows it)."""
    return _USERS.take(oauth_dovecot)[0]


def add_app(
    settings, server: AuthServer, *, secret: str | None = "app-secret", app_mailbox: str | None = None, sasl: str | None = None, name=None
):
    """A client at the auth server and the matching ``generic`` OAuth app in mailq."""
    name = name or f"app{os.getpid()}-{next(_next_app)}"
    server.add_client(name, secret, app_mailbox=app_mailbox)
    spec = apps.validate(
        name=name,
        provider="generic",
        client_id=name,
        client_secret=secret,
        token_url=server.token_url,
        auth_url=server.auth_url,
        device_url=server.device_url,
        scopes=["imap"],
        sasl=sasl,
    )
    return apps.save(settings, spec)[0]


def add_oauth_mailbox(
    settings, dovecot: Dovecot, app, user: str, *, secret: str = "", grant: str = "refresh_token", name=None, interval: int = 60
) -> Mailbox:
    spec = mailboxes.validate(
        name=name or f"mb-{user}",
        host="127.0.0.1",
        port=dovecot.imap_port,
        security="plain",
        username=user,
        password=secret,
        auth="oauth2",
        oauth_app=app,
        oauth_grant=grant,
        interval=interval,
    )
    return mailboxes.save(settings, spec)[0]


def service_account_key(client_email: str) -> tuple[str, bytes]:
    """(Google-style JSON key file text, public key PEM) of a new RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    data = {
        "type": "service_account",
        "client_email": client_email,
        "private_key_id": "k1",
        "private_key": private,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(data), public


def screenshot_of_mailbox(env: dict[str, str], mailbox_id: int, size: tuple[int, int] = (160, 45)) -> str:
    """SVG screenshot of a real farm's console on one mailbox's detail screen (auth and token rows)."""
    import asyncio
    import time

    from console.app import MailqConsole
    from console.screens.mailbox_detail import MailboxScreen
    from console.source import OpsSource
    from mailq import config, db

    settings = config.load(env, env_file=None)
    config.use(settings)
    db.bind(settings.database_url)

    async def shoot() -> str:
        app = MailqConsole(OpsSource(settings, refresh_interval=60), view="mailboxes")
        async with app.run_test(size=size) as pilot:
            app.push_screen(MailboxScreen(mailbox_id, "detail"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await pilot.pause(0.1)
                if not app.busy and "token_expires_at" in app.export_screenshot():
                    break
            return app.export_screenshot()

    try:
        return asyncio.run(shoot())
    finally:
        config.use(None)
        db.close()
