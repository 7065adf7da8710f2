"""Stored mail is private: owner-only files whatever the umask, tightened on upgrade, warned about in status.

The state lives under a world-traversable directory (pytest's tmp_path is 0700
already, which would make the "another user cannot read it" check vacuous), and
the other user is the real ``nobody`` account via setpriv.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mailq import db, files

from .imap_helpers import append

MAIL = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Re: project status\r\nMessage-ID: <p1@example.com>\r\n\r\nsecret body\r\n"


@pytest.fixture
def open_dir():
    """A directory every user can traverse (0755 up to /), so only mailq's own modes protect what is inside."""
    path = Path(tempfile.mkdtemp(prefix="mailq-private-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _as_nobody_can_read(path: Path) -> bool:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to check another user's access")
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(path)], capture_output=True, timeout=10
    )
    return proc.returncode == 0


def _mailq(args: list[str], env: dict[str, str], umask: int = 0, stdin: str | None = None) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "HOME": "/tmp", "LANG": "C.UTF-8", "TZ": "UTC", "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "mailq", *args],
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(umask),
    )


def _env(var: Path, redis_url: str) -> dict[str, str]:
    return {"MAILQ_VAR_DIR": str(var), "MAILQ_REDIS_URL": redis_url, "MAILQ_CONNECT_TIMEOUT": "3", "MAILQ_READ_TIMEOUT": "5"}


def test_everything_stored_is_owner_only_under_umask_0(open_dir, redis_url, dovecot, mail_user):
    user, password = mail_user
    append(dovecot, user, password, MAIL)
    var = open_dir / "var"
    env = _env(var, redis_url)
    assert _mailq(["db", "upgrade"], env).returncode == 0
    added = _mailq(
        ["mailbox", "add", "box", "--host", "127.0.0.1", "--port", str(dovecot.imap_port), "--security", "plain"]
        + ["--username", user, "--password-stdin"],
        env,
        stdin=password + "\n",
    )
    assert added.returncode == 0, added.stderr
    polled = _mailq(["poll", "box", "--inline"], env)
    assert polled.returncode == 0 and ", 1 new" in polled.stdout, polled.stdout + polled.stderr

    blobs = [p for p in (var / "blobs").rglob("*") if p.is_file()]
    assert blobs, "the poll stored no blob"
    for path in [var, *var.rglob("*")]:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(_mode(path))}"
    assert not _as_nobody_can_read(blobs[0])
    assert not _as_nobody_can_read(var / "mailq.db")
    # the check has teeth: the same file, readable by others in an open directory, is readable by nobody
    leaked = open_dir / "leaked"
    shutil.copy(blobs[0], leaked)
    leaked.chmod(0o644)
    assert _as_nobody_can_read(leaked)


def test_sqlite_wal_and_shm_inherit_the_private_mode(open_dir):
    old = os.umask(0)
    try:
        database = db.make_database(f"sqlite:///{open_dir / 'var' / 'm.db'}")
        database.connect()
        database.execute_sql("CREATE TABLE t (x)")
        database.execute_sql("INSERT INTO t VALUES (1)")
        try:
            for name in ("m.db", "m.db-wal", "m.db-shm"):
                assert _mode(open_dir / "var" / name) == 0o600, name
            assert _mode(open_dir / "var") == 0o700
        finally:
            database.close()
    finally:
        os.umask(old)


def test_private_dir_is_exact_under_an_odd_umask(open_dir):
    old = os.umask(0o277)
    try:
        made = files.private_dir(open_dir / "a" / "b")
    finally:
        os.umask(old)
    assert _mode(made) == 0o700 and _mode(made.parent) == 0o700


def test_upgrade_tightens_an_old_var_and_status_warns_until_then(open_dir, redis_url):
    var = open_dir / "var"
    env = _env(var, redis_url)
    assert _mailq(["db", "upgrade"], env, umask=0o022).returncode == 0
    # what an older release left behind: world-readable database, blob tree and key
    blob_dir = var / "blobs" / "ab"
    blob_dir.mkdir(parents=True)
    (blob_dir / ("ab" + "0" * 62)).write_bytes(b"raw mail")
    for path in [var, *var.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (open_dir / "not-mailq").write_text("x")

    before = _mailq(["status"], env)
    assert before.returncode == 0, before.stderr
    assert "can be read by other users" in before.stderr and "mailq db upgrade" in before.stderr

    upgraded = _mailq(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "owner-only" in upgraded.stdout
    for path in [var, *var.rglob("*")]:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(_mode(path))}"
    assert _mode(open_dir / "not-mailq") == 0o644  # only mailq's own files are touched

    after = _mailq(["status"], env)
    assert "can be read by other users" not in after.stderr
    assert "owner-only" not in _mailq(["db", "upgrade"], env).stdout  # nothing left to do: says nothing


def test_systemd_units_set_a_private_umask():
    units = Path(__file__).resolve().parent.parent / "scripts" / "systemd"
    for unit in units.glob("*.service"):
        assert "\nUMask=0077\n" in unit.read_text(), unit.name


def test_a_database_that_cannot_be_created_is_a_clear_error(tmp_path, redis_url):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _mailq(["db", "upgrade"], _env(blocker / "var", redis_url), umask=0o022)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot create the database file" in result.stderr and "MAILQ_VAR_DIR" in result.stderr, result.stderr
