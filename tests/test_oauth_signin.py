"""OAuth2 sign-in, proved against an IMAP server that verifies tokens.

Every sign-in here is a real XOAUTH2/OAUTHBEARER exchange with a private Dovecot
whose ``oauth2`` passdb introspects each token at tests/oauth_server.py, a local
authorization server written for these tests: it stands in for Google and
Microsoft, which cannot run here.
"""

from __future__ import annotations

import time

import pytest

from mailq import crypto, poll
from mailq.models import Mailbox, Message, OAuthToken, utcnow
from mailq.oauth import tokens
from tests.helpers import wait_for
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot, oauth_user, service_account_key

__all__ = ["auth_server", "auth_server_session", "oauth_dovecot", "oauth_user"]  # fixtures


def _deliver(dovecot, user: str, n: int = 3) -> None:
    dovecot.deliver_many((user, f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()) for i in range(n))


def test_refresh_token_sign_in_ingests_and_stores_the_rotated_token(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    _deliver(oauth_dovecot, oauth_user)
    before = auth_server.introspections
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "ok" and result.new == 3, result
    assert auth_server.introspections > before  # Dovecot checked the token at the server
    assert auth_server.calls["refresh_token"] == 1
    stored = Mailbox.get_by_id(mb.id)
    assert crypto.decrypt(settings, stored.secret) == auth_server.refresh_token_of(oauth_user)  # the rotated one
    row = OAuthToken.get_by_id(mb.id)
    assert row.last_outcome == "ok" and row.expires_at is not None
    assert crypto.decrypt(settings, row.access_token) in auth_server.issued_access_tokens()
    # a second poll reuses the cached token: no token call
    _deliver(oauth_dovecot, oauth_user, 1)
    assert poll.poll_mailbox(settings, mb.id).new == 1
    assert auth_server.calls["refresh_token"] == 1
    assert Message.select().where(Message.mailbox == mb.id).count() == 4


def test_oauthbearer_sign_in(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server, sasl="oauthbearer")
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    _deliver(oauth_dovecot, oauth_user, 2)
    assert poll.poll_mailbox(settings, mb.id).new == 2
    wait_for(lambda: f"user=<{oauth_user}>, method=OAUTHBEARER" in oauth_dovecot.log_path.read_text(), 5, "Dovecot's login line")


def test_client_credentials_sign_in_to_a_shared_mailbox(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server, app_mailbox=oauth_user)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, grant="client_credentials")
    _deliver(oauth_dovecot, oauth_user, 2)
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "ok" and result.new == 2, result
    assert auth_server.calls["client_credentials"] == 1


def test_service_account_jwt_bearer_sign_in(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server, secret=None)
    key_json, public = service_account_key(f"sa-{oauth_user}@project.iam.gserviceaccount.com")
    auth_server.add_service_account(f"sa-{oauth_user}@project.iam.gserviceaccount.com", public)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=key_json, grant="service_account")
    _deliver(oauth_dovecot, oauth_user, 1)
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "ok" and result.new == 1, result
    assert auth_server.calls["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 1


def test_tokens_are_refreshed_ahead_of_expiry(settings, auth_server, oauth_dovecot, oauth_user):
    auth_server.access_ttl = 2  # refreshed once less than half its life (1 s) is left
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    assert auth_server.calls["refresh_token"] == 1  # still fresh
    expires = OAuthToken.get_by_id(mb.id).expires_at
    wait_for(lambda: not tokens._fresh(OAuthToken.get_by_id(mb.id), settings, utcnow()), 3, "half the lifetime to pass")
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    assert auth_server.calls["refresh_token"] == 2
    assert OAuthToken.get_by_id(mb.id).expires_at > expires


def test_a_refused_cached_token_forces_one_refresh_and_one_retry(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    first = poll.poll_mailbox(settings, mb.id)
    assert first.outcome == "ok", first
    auth_server.expire_access_tokens()  # the server forgot it early: the cache still thinks it is good
    _deliver(oauth_dovecot, oauth_user, 1)
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "ok" and result.new == 1, result
    assert auth_server.calls["refresh_token"] == 2


def test_a_revoked_grant_parks_the_mailbox_after_one_attempt(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    auth_server.revoke_user(oauth_user)
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "auth_error", result
    assert f"re-authorize: mailq mailbox authorize {mb.name}" in result.error_text
    assert auth_server.calls["refresh_token"] == 2  # the first poll's, and the one that found it revoked
    stored = Mailbox.get_by_id(mb.id)
    assert stored.state == "auth_error" and stored.last_error_class == "oauth_grant"
    assert OAuthToken.get_by_id(mb.id).last_outcome == "revoked"
    assert poll.poll_mailbox(settings, mb.id, force=True).outcome == "skipped"
    assert auth_server.calls["refresh_token"] == 2


@pytest.mark.parametrize("mode", ["down", "error"])  # 503 temporarily_unavailable | 500 with a non-JSON body
def test_a_token_endpoint_that_is_down_is_transient_and_recovers(settings, auth_server, oauth_dovecot, oauth_user, mode):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    auth_server.mode = mode
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "error" and result.error_class == "token_endpoint", result
    stored = Mailbox.get_by_id(mb.id)
    assert stored.state == "failing" and stored.next_attempt_at is not None  # backoff
    assert OAuthToken.get_by_id(mb.id).last_outcome == "transient"
    auth_server.mode = "ok"
    _deliver(oauth_dovecot, oauth_user, 1)
    result = poll.poll_mailbox(settings, mb.id, force=True)
    assert result.outcome == "ok" and result.new == 1
    assert Mailbox.get_by_id(mb.id).state == "ok"


def test_a_slow_token_endpoint_fails_within_the_deadline(settings, auth_server, oauth_dovecot, oauth_user):
    fast = settings.replace(read_timeout=1.0, connect_timeout=1.0)
    app = add_app(fast, auth_server)
    mb = add_oauth_mailbox(fast, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    auth_server.mode, auth_server.slow_seconds = "slow", 3
    started = time.monotonic()
    result = poll.poll_mailbox(fast, mb.id)
    assert time.monotonic() - started < 2.5
    assert result.outcome == "error" and result.error_class == "token_endpoint" and "did not answer in time" in result.error_text


def test_a_refused_app_parks_its_mailboxes_until_its_secret_is_renewed(settings, auth_server, oauth_dovecot, oauth_user):
    from mailq.oauth import apps

    app = add_app(settings, auth_server, secret="old-secret")
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    auth_server.add_client(app.name, "new-secret")  # the old secret expired at the provider
    result = poll.poll_mailbox(settings, mb.id)
    assert result.outcome == "auth_error" and result.error_class == "oauth_client", result
    assert "old-secret" not in result.error_text
    spec = apps.validate(
        name=app.name, provider="generic", client_id=app.name, client_secret="new-secret", token_url=app.token_url, scopes=["imap"]
    )
    apps.save(settings, spec)
    assert Mailbox.get_by_id(mb.id).state == "ok"
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
