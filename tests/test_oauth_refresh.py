"""Token refresh across processes, and ``secrets rotate`` over OAuth secrets.

The authorization server is tests/oauth_server.py, a local stand-in for Google and
Microsoft; like Microsoft it revokes the whole token family when a rotated refresh
token is replayed, so two uncoordinated refreshes would break the mailbox.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from cryptography.fernet import Fernet

from mailq import crypto, poll
from mailq.models import Mailbox, OAuthApp, OAuthToken
from tests.helpers import run_cli
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot, oauth_user

__all__ = ["auth_server", "auth_server_session", "oauth_dovecot", "oauth_user"]  # fixtures

_REFRESH = """
import hashlib, sys
from mailq import config, db
from mailq.models import Mailbox
from mailq.oauth import tokens
settings = config.load(env_file=None)
db.bind(settings.database_url)
token, _ = tokens.access_token(settings, Mailbox.get_by_id(int(sys.argv[1])))
print(hashlib.sha256(token.encode()).hexdigest())
"""


def test_two_processes_refreshing_at_once_make_one_token_call(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    auth_server.mode, auth_server.slow_seconds = "slow", 1.5  # the first call is still running when the second process asks
    env = {**settings.as_env(), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen([sys.executable, "-c", _REFRESH, str(mb.id)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert auth_server.calls["refresh_token"] == 1
    hashes = {out.strip() for out, _ in outputs}
    assert len(hashes) == 1  # both use the one new token
    stored = Mailbox.get_by_id(mb.id)
    assert crypto.decrypt(settings, stored.secret) == auth_server.refresh_token_of(oauth_user)  # family alive, rotated token kept
    assert hashlib.sha256(crypto.decrypt(settings, OAuthToken.get_by_id(mb.id).access_token).encode()).hexdigest() in hashes


def test_secrets_rotate_re_encrypts_client_secrets_grants_and_cached_tokens(
    settings, auth_server, oauth_dovecot, oauth_user, capsys, monkeypatch
):
    app = add_app(settings, auth_server, secret="the-client-secret")
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("NEW_KEY", new_key)
    result = run_cli(["secrets", "rotate", "--new-key-env", "NEW_KEY"], capsys)
    assert result.code == 0, result.err
    rotated = settings.replace(secret_key=new_key)
    assert crypto.decrypt(rotated, OAuthApp.get_by_id(app.id).client_secret) == "the-client-secret"
    cached = crypto.decrypt(rotated, OAuthToken.get_by_id(mb.id).access_token)
    assert cached in auth_server.issued_access_tokens()
    assert crypto.decrypt(rotated, Mailbox.get_by_id(mb.id).secret) == auth_server.refresh_token_of(oauth_user)
    calls = auth_server.calls["refresh_token"]
    assert poll.poll_mailbox(rotated, mb.id).outcome == "ok"
    assert auth_server.calls["refresh_token"] == calls  # the re-encrypted cached token still serves
