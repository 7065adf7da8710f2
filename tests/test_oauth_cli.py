"""``mailq oauth app ...``, OAuth2 ``mailbox add|import|show|test`` and ``mailbox authorize`` end to end.

The authorization server is tests/oauth_server.py, written for the tests as a stand-in
for Google and Microsoft; the IMAP server is a Dovecot that introspects every token there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import requests

from mailq import crypto
from mailq.models import Mailbox, OAuthApp, OAuthToken
from tests.helpers import run_cli, wait_for
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot, oauth_user

__all__ = ["auth_server", "auth_server_session", "oauth_dovecot", "oauth_user"]  # fixtures


def test_providers_fill_endpoints_and_scopes_and_list_never_shows_the_secret(settings, capsys):
    result = run_cli(
        ["oauth", "app", "add", "gm", "--provider", "google", "--client-id", "cid.apps.googleusercontent.com", "--client-secret-stdin"],
        capsys,
        stdin="gsecret-123\n",
    )
    assert result.code == 0, result.err
    result = run_cli(
        ["oauth", "app", "add", "ms", "--provider", "microsoft", "--client-id", "ms-cid", "--tenant", "contoso.onmicrosoft.com"], capsys
    )
    assert result.code == 0, result.err
    listed = run_cli(["oauth", "app", "list", "--json"], capsys)
    apps = {a["name"]: a for a in json.loads(listed.out)}
    assert apps["gm"]["token_url"] == "https://oauth2.googleapis.com/token" and apps["gm"]["scopes"] == ["https://mail.google.com/"]
    assert apps["gm"]["has_client_secret"] is True and "gsecret-123" not in listed.out
    assert apps["ms"]["token_url"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert apps["ms"]["scopes"] == ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]
    assert apps["ms"]["has_client_secret"] is False
    assert crypto.decrypt(settings, OAuthApp.get(OAuthApp.name == "gm").client_secret) == "gsecret-123"
    text = run_cli(["oauth", "app", "list"], capsys)
    assert "gsecret-123" not in text.out and "gm" in text.out


def test_bad_app_definitions_fail_clearly(settings, capsys):
    result = run_cli(["oauth", "app", "add", "x", "--provider", "generic", "--client-id", "c"], capsys)
    assert result.code == 2 and "--token-url" in result.err and "Traceback" not in result.err
    result = run_cli(
        ["oauth", "app", "add", "x", "--provider", "generic", "--client-id", "c", "--token-url", "http://example.org/t", "--scope", "s"],
        capsys,
    )
    assert result.code == 2 and "not an https:// URL" in result.err


def test_a_mailbox_with_a_refresh_token_signs_in_with_mailbox_test(settings, auth_server, oauth_dovecot, oauth_user, capsys):
    app = add_app(settings, auth_server)
    refresh = auth_server.consent(app.name, oauth_user)
    args = ["mailbox", "add", "o1", "--host", "127.0.0.1", "--port", str(oauth_dovecot.imap_port), "--security", "plain"]
    result = run_cli([*args, "--username", oauth_user, "--oauth-app", app.name, "--refresh-token-stdin"], capsys, stdin=refresh + "\n")
    assert result.code == 0, result.err
    tested = run_cli(["mailbox", "test", "o1", "--json"], capsys)
    assert tested.code == 0, tested.err
    data = json.loads(tested.out)
    assert data["ok"] is True and data["auth"] == "oauth2" and data["last_refresh_outcome"] == "ok" and data["token_expires_at"]
    shown = run_cli(["mailbox", "show", "o1", "--json"], capsys)
    detail = json.loads(shown.out)
    assert detail["auth"] == "oauth2" and detail["oauth_app"] == app.name and detail["oauth_grant"] == "refresh_token"
    everything = tested.out + shown.out + run_cli(["mailbox", "show", "o1"], capsys).out + run_cli(["mailbox", "list"], capsys).out
    for secret in auth_server.issued_secrets():
        assert secret not in everything
    removed = run_cli(["oauth", "app", "remove", app.name], capsys)
    assert removed.code == 2 and "used by mailbox(es) o1" in removed.err


def test_a_mailbox_added_without_a_grant_waits_for_authorize(settings, auth_server, oauth_dovecot, oauth_user, capsys):
    app = add_app(settings, auth_server)
    result = run_cli(["mailbox", "add", "o2", "--host", "127.0.0.1", "--username", oauth_user, "--oauth-app", app.name], capsys)
    assert result.code == 0 and "mailq mailbox authorize o2" in result.out
    mb = Mailbox.get(Mailbox.name == "o2")
    assert mb.state == "auth_error" and not mb.enabled
    wrong = run_cli(["mailbox", "add", "o3", "--host", "h", "--username", "u", "--refresh-token-env", "X"], capsys)
    assert wrong.code == 2 and "--oauth-app" in wrong.err


def test_csv_import_takes_auth_and_oauth_app_columns(settings, auth_server, oauth_dovecot, tmp_path, capsys):
    app = add_app(settings, auth_server)
    csv = tmp_path / "m.csv"
    csv.write_text(
        "name,host,port,security,username,password,auth,oauth_app\n"
        "pw1,imap.example.org,993,ssl,a@example.org,secret-pw,password,\n"
        f"oa1,imap.example.org,993,ssl,b@example.org,,oauth2,{app.name}\n"
        "oa2,imap.example.org,993,ssl,c@example.org,,oauth2,no-such-app\n"
    )
    result = run_cli(["mailbox", "import", str(csv)], capsys)
    assert "imported 2 new" in result.out and "no OAuth app named 'no-such-app'" in result.err
    oa1 = Mailbox.get(Mailbox.name == "oa1")
    assert (oa1.auth, oa1.oauth_app_id, oa1.state) == ("oauth2", app.id, "auth_error")
    assert Mailbox.get(Mailbox.name == "pw1").auth == "password"


def _authorize(settings, name: str, *extra: str) -> subprocess.Popen:
    env = {**settings.as_env(), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "400"}
    return subprocess.Popen(
        [sys.executable, "-m", "mailq", "mailbox", "authorize", name, "--no-browser", "--timeout", "30", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines_until(proc: subprocess.Popen, pattern: str) -> re.Match:
    """Read the command's output until ``pattern`` shows up (the reader thread keeps the deadline)."""
    found: list[re.Match] = []
    seen: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                found.append(match)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(20)
    assert found, f"no {pattern!r} in {seen!r}"
    return found[0]


def test_authorize_with_a_loopback_redirect_and_pkce(settings, auth_server, oauth_dovecot, oauth_user, capsys):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user)
    assert mb.state == "auth_error"
    auth_server.consent_user = oauth_user  # who is signed in to the "browser"
    proc = _authorize(settings, mb.name, "--browser")
    url = _lines_until(proc, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)").group(1)
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1" in url
    page = requests.get(url, timeout=10)  # the browser: consent, then follow the redirect to mailq's listener
    assert page.status_code == 200 and "signed in" in page.text
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "authorized mailbox" in out
    stored = Mailbox.get_by_id(mb.id)
    assert stored.state == "ok" and crypto.decrypt(settings, stored.secret) == auth_server.refresh_token_of(oauth_user)
    assert OAuthToken.get_by_id(mb.id).last_outcome == "ok"
    tested = run_cli(["mailbox", "test", mb.name], capsys)
    assert tested.code == 0, tested.err
    assert auth_server.calls["authorization_code"] == 1 and auth_server.calls["refresh_token"] == 0  # the code's token served


def test_authorize_with_the_device_code_flow(settings, auth_server, oauth_dovecot, oauth_user, capsys):
    app = add_app(settings, auth_server, secret=None)  # a public client, like Microsoft's
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user)
    proc = _authorize(settings, mb.name, "--device")
    code = _lines_until(proc, r"code: (\S+)").group(1)
    auth_server.approve_device(code, oauth_user)  # the user typed the code and consented
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stored = Mailbox.get_by_id(mb.id)
    assert stored.state == "ok" and stored.enabled
    assert run_cli(["mailbox", "test", mb.name], capsys).code == 0
    wait_for(lambda: auth_server.calls["urn:ietf:params:oauth:grant-type:device_code"] >= 1, 1, "device polls")


def test_authorize_refused_consent_says_so(settings, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user)
    auth_server.consent_user = None  # the user clicks "cancel"
    proc = _authorize(settings, mb.name, "--browser")
    url = _lines_until(proc, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)").group(1)
    requests.get(url, timeout=10)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "consent was refused (access_denied)" in err and "Traceback" not in err
    assert Mailbox.get_by_id(mb.id).state == "auth_error"


def test_a_google_app_asks_for_offline_access_and_the_mailbox_user(settings, auth_server, oauth_dovecot, oauth_user):
    """The google provider's consent URL carries access_type=offline + prompt=consent (else no refresh token)."""
    auth_server.add_client("gapp", "gsecret")
    result = run_cli_process_env(
        settings,
        ["oauth", "app", "add", "gapp", "--provider", "google", "--client-id", "gapp", "--client-secret-env", "GS"],
        {"GS": "gsecret"},
    )
    assert result.returncode == 0, result.stderr
    app = OAuthApp.get(OAuthApp.name == "gapp")
    app.auth_url, app.token_url = auth_server.auth_url, auth_server.token_url  # the provider's defaults, pointed at the stand-in
    app.save()
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user)
    assert mb.host == "127.0.0.1"  # given; without --host it would be imap.gmail.com
    auth_server.consent_user = oauth_user
    proc = _authorize(settings, mb.name)  # google: the browser flow by default
    url = _lines_until(proc, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)").group(1)
    assert "access_type=offline" in url and "prompt=consent" in url and f"login_hint={oauth_user}" in url
    assert "scope=https%3A%2F%2Fmail.google.com%2F" in url
    requests.get(url, timeout=10)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_app_only_access_needs_a_secret_and_for_microsoft_a_tenant_id(settings, capsys):
    run_cli(["oauth", "app", "add", "ms", "--provider", "microsoft", "--client-id", "c", "--client-secret-env", "MS"], capsys)
    assert run_cli(["oauth", "app", "list", "--json"], capsys).out.count('"name"') == 0  # MS was not set: nothing added
    os.environ["MS_TEST_SECRET"] = "s3"
    try:
        added = run_cli(
            ["oauth", "app", "add", "ms", "--provider", "microsoft", "--client-id", "c", "--client-secret-env", "MS_TEST_SECRET"], capsys
        )
    finally:
        del os.environ["MS_TEST_SECRET"]
    assert added.code == 0, added.err
    result = run_cli(["mailbox", "add", "shared", "--username", "shared@contoso.com", "--oauth-app", "ms", "--client-credentials"], capsys)
    assert result.code == 2 and "needs its tenant id (--tenant)" in result.err
    run_cli(["oauth", "app", "add", "pub", "--provider", "microsoft", "--client-id", "c", "--tenant", "contoso.onmicrosoft.com"], capsys)
    result = run_cli(["mailbox", "add", "shared", "--username", "shared@contoso.com", "--oauth-app", "pub", "--client-credentials"], capsys)
    assert result.code == 2 and "has no client secret" in result.err
    run_cli(["oauth", "app", "add", "ms", "--provider", "microsoft", "--client-id", "c", "--tenant", "contoso.onmicrosoft.com"], capsys)
    ok = run_cli(["mailbox", "add", "shared", "--username", "shared@contoso.com", "--oauth-app", "ms", "--client-credentials"], capsys)
    assert ok.code == 0, ok.err
    shared = Mailbox.get(Mailbox.name == "shared")
    assert (shared.host, shared.port, shared.security, shared.oauth_grant) == ("outlook.office365.com", 993, "ssl", "client_credentials")


def run_cli_process_env(settings, args: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**settings.as_env(), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **extra}
    return subprocess.run([sys.executable, "-m", "mailq", *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_new_refresh_token_ends_auth_error_and_a_reimport_without_one_keeps_the_stored_one(
    settings, auth_server, oauth_dovecot, oauth_user, tmp_path, capsys
):
    from mailq import poll

    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    auth_server.revoke_user(oauth_user)
    assert poll.poll_mailbox(settings, mb.id).outcome == "auth_error"
    where = ["--host", "127.0.0.1", "--port", str(oauth_dovecot.imap_port), "--security", "plain", "--username", oauth_user]
    again = run_cli(
        ["mailbox", "add", mb.name, *where, "--oauth-app", app.name, "--refresh-token-stdin"],
        capsys,
        stdin=auth_server.consent(app.name, oauth_user),
    )
    assert again.code == 0, again.err
    assert Mailbox.get_by_id(mb.id).state == "ok" and OAuthToken.get_or_none(OAuthToken.mailbox == mb.id) is None
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
    rotated = crypto.decrypt(settings, Mailbox.get_by_id(mb.id).secret)
    csv = tmp_path / "again.csv"
    csv.write_text(
        f"name,host,port,security,username,password,auth,oauth_app\n{mb.name},127.0.0.1,{oauth_dovecot.imap_port},plain,{oauth_user},,oauth2,{app.name}\n"
    )
    assert "updated 1" in run_cli(["mailbox", "import", str(csv)], capsys).out
    assert crypto.decrypt(settings, Mailbox.get_by_id(mb.id).secret) == rotated
    assert poll.poll_mailbox(settings, mb.id).outcome == "ok"
