"""The idler signs OAuth2 mailboxes in with XOAUTH2/OAUTHBEARER, from the workers' token cache.

Against a real Dovecot whose oauth2 passdb introspects every token at
tests/oauth_server.py (the local authorization server standing in for Google
and Microsoft, which cannot run here).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from mailq.errors import AuthError, GrantRevokedError
from mailq.models import Mailbox, OAuthToken, utcnow
from mailq.push.client import IdleClient
from mailq.push.targets import Targets, oauth_credentials
from mailq.queues import connect
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot, oauth_user

__all__ = ["auth_server", "auth_server_session", "oauth_dovecot", "oauth_user"]  # fixtures


def _hears_new_mail(dovecot, user: str, creds) -> float:
    async def scenario():
        client = IdleClient("dovecot-oauth")
        await client.open("127.0.0.1", dovecot.imap_port, "plain", None, 5)
        await client.authenticate(creds.username, creds.mechanism, creds.secret, 5, creds.on_rejection)
        await client.examine("INBOX", 5)
        await client.idle(5)
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, dovecot.append_imap, user, f"pw-{user}", b"Subject: pushed\r\n\r\nhello\r\n")
        event = await client.wait(10)
        await client.done(5)
        await client.logout(5)
        assert event is not None and event.new_mail
        return time.monotonic() - started

    return asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize("sasl", ["xoauth2", "oauthbearer"])
def test_an_oauth2_mailbox_is_pushed_with_a_token_from_the_shared_cache(settings, auth_server, oauth_dovecot, oauth_user, sasl):
    app = add_app(settings, auth_server, sasl=sasl)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    assert Targets().refresh(connect(settings)) == {}, "pushed once its first poll has ended"
    Mailbox.update(last_poll_at=utcnow(), updated_at=utcnow()).where(Mailbox.id == mb.id).execute()
    assert Targets().refresh(connect(settings))[mb.id].auth == "oauth2"
    creds = oauth_credentials(settings, mb.id, None)
    assert creds.mechanism == sasl and creds.secret in auth_server.issued_access_tokens()
    assert _hears_new_mail(oauth_dovecot, oauth_user, creds) < 5
    # the idler's next sign-in reuses the cached token: one refresh in all
    assert oauth_credentials(settings, mb.id, None).secret == creds.secret and auth_server.calls["refresh_token"] == 1


def test_a_refused_cached_token_gets_one_forced_refresh_and_a_revoked_grant_parks(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    fresh = oauth_credentials(settings, mb.id, None)
    assert oauth_credentials(settings, mb.id, fresh) is None  # a token fetched a moment ago is not worth a retry
    cached = oauth_credentials(settings, mb.id, None)
    assert cached.from_cache and cached.secret == fresh.secret
    retry = oauth_credentials(settings, mb.id, cached)  # what _sign_in asks after the server refused a cached token
    assert retry is not None and retry.secret != cached.secret and auth_server.calls["refresh_token"] == 2

    async def refused():
        client = IdleClient("dovecot-oauth")
        await client.open("127.0.0.1", oauth_dovecot.imap_port, "plain", None, 5)
        try:
            await client.authenticate(oauth_user, "xoauth2", "not-a-token", 5, "re-authorize: mailq mailbox authorize X")
        finally:
            client.close()

    with pytest.raises(AuthError, match="refused the OAuth2 sign-in.*re-authorize") as caught:
        asyncio.run(asyncio.wait_for(refused(), 30))
    assert "not-a-token" not in str(caught.value)
    auth_server.revoke_user(oauth_user)
    OAuthToken.update(expires_at=utcnow() - timedelta(seconds=1)).where(OAuthToken.mailbox == mb.id).execute()
    with pytest.raises(GrantRevokedError, match="re-authorize"):  # an AuthError: the idler records auth_error once, lets go
        oauth_credentials(settings, mb.id, None)
