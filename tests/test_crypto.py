"""Passwords are encrypted at rest; keys are generated, validated and rotated with clear errors."""

import os
import stat

import psycopg2
import pytest
from cryptography.fernet import Fernet

from mailq import config, crypto, mailboxes
from mailq.errors import SecretKeyError
from mailq.models import Mailbox
from tests.helpers import run_cli

PASSWORD = "S3cret-PW-do-not-leak-7f3a"


def _add(settings, name="acct", password=PASSWORD):
    spec = mailboxes.validate(name=name, host="127.0.0.1", port=143, security="plain", username="bob", password=password)
    return mailboxes.save(settings, spec)[0]


def test_no_password_in_clear_in_the_database_bytes(settings, backend):
    _add(settings)
    if backend == "sqlite":
        from mailq.db import database

        database.obj.execute_sql("PRAGMA wal_checkpoint(FULL)")
        path = settings.database_url[len("sqlite:///") :]
        blob = b"".join(open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p))
    else:
        dsn, _, options = settings.database_url.partition("?options=-csearch_path%3D")
        conn = psycopg2.connect(dsn, options=f"-csearch_path={options}")
        with conn.cursor() as cur:
            cur.execute("SELECT mailbox::text FROM mailbox")
            blob = "".join(r[0] for r in cur.fetchall()).encode()
        conn.close()
    assert b"bob" in blob  # we are looking at the right bytes
    assert PASSWORD.encode() not in blob
    token = Mailbox.get().secret
    assert crypto.decrypt(settings, token) == PASSWORD


def test_wrong_key_is_a_clear_error_naming_the_setting(settings):
    mb = _add(settings)
    other = settings.replace(secret_key=Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError) as info:
        crypto.decrypt(other, mb.secret, "the password of mailbox 'acct'")
    assert "MAILQ_SECRET_KEY" in str(info.value) and PASSWORD not in str(info.value)


def test_malformed_key_is_a_clear_error(settings):
    bad = settings.replace(secret_key="not-a-key")
    with pytest.raises(SecretKeyError, match="MAILQ_SECRET_KEY: not a valid key"):
        crypto.encrypt(bad, "x")


def test_upgrade_generates_a_private_key_file_when_none_is_configured(bare_settings, capsys):
    s = bare_settings.replace(secret_key="")
    config.use(s)
    result = run_cli(["db", "upgrade"], capsys)
    assert result.code == 0
    assert str(s.secret_key_file) in result.out
    assert stat.S_IMODE(os.stat(s.secret_key_file).st_mode) == 0o600
    Fernet(s.secret_key_file.read_text().strip().encode())  # a valid key
    again = run_cli(["db", "upgrade"], capsys)
    assert "generated" not in again.out


def test_missing_key_says_what_to_do(settings):
    s = settings.replace(secret_key="")
    with pytest.raises(SecretKeyError, match="run `mailq db upgrade` to generate a key, or set MAILQ_SECRET_KEY"):
        crypto.encrypt(s, "x")


def test_rotate_reencrypts_every_secret(settings, capsys, monkeypatch):
    _add(settings, "a", "pw-a")
    _add(settings, "b", "pw-b")
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("NEW_MAILQ_KEY", new_key)
    result = run_cli(["secrets", "rotate", "--new-key-env", "NEW_MAILQ_KEY"], capsys)
    assert result.code == 0, result.err
    assert "re-encrypted 2 password(s)" in result.out
    rotated = settings.replace(secret_key=new_key)
    assert [crypto.decrypt(rotated, m.secret) for m in Mailbox.select().order_by(Mailbox.name)] == ["pw-a", "pw-b"]
    with pytest.raises(SecretKeyError):
        crypto.decrypt(settings, Mailbox.get(Mailbox.name == "a").secret)


def test_rotate_with_a_wrong_current_key_changes_nothing(settings, capsys, monkeypatch):
    _add(settings, "a", "pw-a")
    before = Mailbox.get().secret
    config.use(settings.replace(secret_key=Fernet.generate_key().decode()))
    monkeypatch.setenv("NEW_MAILQ_KEY", Fernet.generate_key().decode())
    result = run_cli(["secrets", "rotate", "--new-key-env", "NEW_MAILQ_KEY"], capsys)
    assert result.code == 1 and "nothing was changed" in result.err
    assert Mailbox.get().secret == before


def test_rotate_updates_the_key_file_when_that_is_where_the_key_lives(bare_settings, capsys, monkeypatch):
    s = bare_settings.replace(secret_key="")
    config.use(s)
    assert run_cli(["db", "upgrade"], capsys).code == 0
    _add(s, "a", "pw-a")
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("K2", new_key)
    assert run_cli(["secrets", "rotate", "--new-key-env", "K2"], capsys).code == 0
    assert s.secret_key_file.read_text().strip() == new_key
    assert crypto.decrypt(s, Mailbox.get().secret) == "pw-a"
