"""No mailbox password, OAuth2 token or client secret leaks: not into Redis (any key, any type,
rq's compressed job data), logs, job arguments, `--json` output or a console screenshot; and
stored secrets need the key.

One real farm run (scheduler + workers as processes, private Redis and Dovecot)
with known passwords, one of them changed on the server so the auth-failure
path (error texts, health, logs) runs too; and OAuth2 mailboxes signing in
through tests/oauth_server.py (a local authorization server standing in for
Google/Microsoft) with 2-second tokens, so refreshes and rotations happen, one
of them revoked so the invalid_grant path runs too. Every token that server
ever issued, and the app's client secret, are needles.
"""

from __future__ import annotations

import json
import pickle
import zlib

import pytest
import redis
from cryptography.fernet import Fernet

from mailq import crypto, db
from mailq.errors import SecretKeyError
from tests.chaos import faults
from tests.chaos.farm import Farm
from tests.console_helpers import screenshot_of_farm
from tests.helpers import wait_for
from tests.oauth_helpers import screenshot_of_mailbox
from tests.oauth_server import AuthServer

CLIENT_SECRET = "client-secret-0f3c9a1e7b"

pytestmark = pytest.mark.slow


def _query(sql: str):
    try:
        return db.database.execute_sql(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def ran_farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    with AuthServer(access_ttl=2) as auth:
        # DEBUG: every line any process can write is searched, RQ's per-job lines (dropped at INFO) included
        farm = Farm(root / "farm", db_kind="sqlite", interval=1, settings_env={"MAILQ_LOG_LEVEL": "DEBUG"})
        farm.dovecot.oauth2_introspection_url = auth.introspect_url  # XOAUTH2 too, tokens checked at `auth`
        with farm:
            users = farm.add_mailboxes(4, prefix="sec")
            original = dict(farm.passwords)
            oauth_users = _add_oauth_mailboxes(farm, auth)
            for i, user in enumerate(users + oauth_users):
                farm.dovecot.deliver_many((user, f"Subject: hello {i}-{n}\r\n\r\nbody\r\n".encode()) for n in range(5))
            farm.start_farm(workers=2)
            wait_for(lambda: _query("SELECT count(*) FROM message")[0][0] >= 35, 60, "the first messages")
            wait_for(lambda: sum(auth.refreshes.values()) >= 4, 30, "token refreshes (2-second tokens)")
            victim = users[0]
            faults.change_password(farm, victim)
            auth.revoke_user(oauth_users[1])
            for name in (victim, oauth_users[1]):
                wait_for(
                    lambda name=name: _query(f"SELECT state FROM mailbox WHERE name = '{name}'")[0][0] == "auth_error",
                    60,
                    f"{name} to reach auth_error",
                )
            farm.supervisor.stop_all()  # nothing issues tokens behind the scan's back
            farm.auth = auth  # `mailbox test` below may still refresh: tests add what it issues later
            passwords = sorted(set(original.values()) | set(farm.passwords.values()) | set(auth.issued_secrets()) | {CLIENT_SECRET})
            assert any(p.startswith("at-") for p in passwords) and any(p.startswith("rt-") for p in passwords)
            yield farm, passwords


def _add_oauth_mailboxes(farm: Farm, auth: AuthServer) -> list[str]:
    """An app with a client secret; two mailboxes with refresh tokens, one with app-only access."""
    users = ["seco0000", "seco0001", "secapp0"]
    farm.dovecot.add_users({u: f"pw-{u}-unused" for u in users})
    auth.add_client("secapp", CLIENT_SECRET, app_mailbox="secapp0")
    app = ["oauth", "app", "add", "secapp", "--provider", "generic", "--client-id", "secapp", "--client-secret-stdin"]
    farm.cli(*app, "--token-url", auth.token_url, "--scope", "imap", stdin=CLIENT_SECRET)
    where = ["--host", "127.0.0.1", "--port", str(farm.dovecot.imap_port), "--security", "plain", "--oauth-app", "secapp"]
    for user in users[:2]:
        farm.cli("mailbox", "add", user, "--username", user, *where, "--refresh-token-stdin", stdin=auth.consent("secapp", user))
    farm.cli("mailbox", "add", users[2], "--username", users[2], *where, "--client-credentials")
    return users


def _needles(passwords: list[str]) -> list[bytes]:
    return [p.encode() for p in passwords]


def _leaks(blob: bytes, needles: list[bytes]) -> list[str]:
    return [n.decode() for n in needles if n in blob]


def _redis_dump(url: str) -> list[tuple[str, bytes]]:
    """Every key of every type, as (key, bytes); rq job `data` is also zlib-decompressed and unpickled."""
    client = redis.Redis.from_url(url)
    out: list[tuple[str, bytes]] = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            name = key.decode(errors="replace")
            out.append((name, key))
            if kind == "string":
                out.append((name, client.get(key) or b""))
            elif kind == "hash":
                for field, value in client.hgetall(key).items():
                    out.append((f"{name}.{field.decode(errors='replace')}", field + b"=" + value))
                    if field == b"data":
                        try:
                            raw = zlib.decompress(value)
                        except zlib.error:
                            raw = value
                        out.append((f"{name}.data(decompressed)", raw))
                        try:
                            out.append((f"{name}.data(unpickled)", repr(pickle.loads(raw)).encode()))
                        except Exception:
                            pass
            elif kind == "list":
                out += [(name, v) for v in client.lrange(key, 0, -1)]
            elif kind == "set":
                out += [(name, v) for v in client.smembers(key)]
            elif kind == "zset":
                out += [(name, m + b" " + str(s).encode()) for m, s in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                for entry_id, fields in client.xrange(key):
                    out.append((name, entry_id + b" " + repr(fields).encode()))
            else:
                out.append((name, client.dump(key) or b""))
    finally:
        client.close()
    return out


def test_no_password_in_any_redis_key_or_value(ran_farm):
    farm, passwords = ran_farm
    dump = _redis_dump(farm.redis.url)
    assert any(name.startswith("rq:job:") for name, _ in dump), "the dump saw no rq job: the check would be vacuous"
    leaks = [(name, _leaks(value, _needles(passwords))) for name, value in dump if _leaks(value, _needles(passwords))]
    assert leaks == []


def test_no_password_in_job_arguments(ran_farm):
    from rq.job import Job

    farm, passwords = ran_farm
    client = redis.Redis.from_url(farm.redis.url)
    try:
        ids = [k.decode()[len("rq:job:") :] for k in client.scan_iter("rq:job:*")]
        jobs = [j for j in Job.fetch_many(ids, connection=client) if j is not None]
        assert jobs
        for job in jobs:
            text = repr((job.func_name, job.args, job.kwargs, job.description, job.meta)).encode()
            assert _leaks(text, _needles(passwords)) == [], job.id
            assert all(isinstance(a, int) for a in job.args), f"job arguments must be ids only: {job.args!r}"
    finally:
        client.close()


def test_no_password_in_any_log_line(ran_farm):
    farm, passwords = ran_farm
    logs = farm.logs().encode()
    assert b"poll" in logs  # the logs are really there
    assert _leaks(logs, _needles(passwords)) == []


def test_no_password_in_json_output(ran_farm):
    farm, passwords = ran_farm
    outputs = [
        farm.cli("mailbox", "list", "--json").stdout,
        farm.cli("status", "--json").stdout,
        farm.cli("messages", "list", "--json").stdout,
        farm.cli("failed", "list", "--json").stdout,
        farm.cli("oauth", "app", "list", "--json").stdout,
        farm.cli("mailbox", "test", "seco0000", "--json").stdout,
        farm.cli("mailbox", "show", "seco0001", "--json").stdout,
    ]
    for mailbox_id in farm.mailbox_ids.values():
        outputs.append(farm.cli("mailbox", "show", str(mailbox_id), "--json").stdout)
    first_message = _query("SELECT min(id) FROM message")[0][0]
    outputs.append(farm.cli("messages", "show", str(first_message), "--json").stdout)
    passwords = sorted(set(passwords) | set(farm.auth.issued_secrets()))
    for text in outputs:
        json.loads(text)
        assert _leaks(text.encode(), _needles(passwords)) == []


def test_no_password_in_a_console_screenshot(ran_farm, tmp_path):
    farm, passwords = ran_farm
    shots = screenshot_of_farm(farm.env, ["overview", "mailboxes", "failed", "schedule"], size=(160, 45))
    assert "sec0001" in shots["mailboxes"]  # the screen really shows the mailboxes
    shots["detail"] = screenshot_of_mailbox(farm.env, _query("SELECT id FROM mailbox WHERE name = 'seco0000'")[0][0])
    assert "token_expires_at" in shots["detail"] and "last_refresh_outcome" in shots["detail"]
    for view, svg in shots.items():
        (tmp_path / f"{view}.svg").write_text(svg)
        assert _leaks(svg.encode(), _needles(passwords)) == [], view


def test_stored_secrets_need_the_key(ran_farm):
    farm, passwords = ran_farm
    from mailq.models import Mailbox, OAuthApp, OAuthToken

    try:
        tokens = [m.secret for m in Mailbox.select() if m.oauth_grant != "client_credentials"]
        tokens += [a.client_secret for a in OAuthApp.select()] + [t.access_token for t in OAuthToken.select() if t.access_token]
    finally:
        db.close()
    assert tokens
    passwords = sorted(set(passwords) | set(farm.auth.issued_secrets()))
    other = farm.settings.replace(secret_key=Fernet.generate_key().decode())
    for token in tokens:
        assert crypto.decrypt(farm.settings, token) in passwords  # the right key works
        with pytest.raises(SecretKeyError):
            crypto.decrypt(other, token)
    raw = b"".join(p.read_bytes() for p in (farm.root / "var").glob("mailq.db*"))
    assert raw and _leaks(raw, _needles(passwords)) == []
