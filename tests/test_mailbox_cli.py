"""The mailbox commands of the CLI contract, on SQLite and PostgreSQL."""

import json

import pytest

from mailq import crypto
from mailq.models import Attachment, FolderState, Mailbox, Message, PollRun
from mailq.storage import open_store
from tests.helpers import run_cli

PW = "hunter2-Very-Secret"


def add(capsys, name="demo", *extra, password=PW):
    return run_cli(
        [
            "mailbox",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            "10143",
            "--security",
            "plain",
            "--username",
            "user0001",
            "--password-stdin",
            *extra,
        ],
        capsys,
        stdin=password,
    )


def test_add_list_show_json(settings, capsys):
    result = add(capsys)
    assert result.code == 0, result.err
    assert "added mailbox 1 (demo)" in result.out
    listed = run_cli(["mailbox", "list", "--json"], capsys)
    data = json.loads(listed.out)
    assert data == [
        {
            "id": 1,
            "name": "demo",
            "host": "127.0.0.1",
            "port": 10143,
            "security": "plain",
            "username": "user0001",
            "folders": ["INBOX"],
            "interval": 60,
            "priority": "normal",
            "paused": False,
            "state": "ok",
            "initial_sync": "all",
            "auth": "password",
            "push": "auto",
        }
    ]
    shown = json.loads(run_cli(["mailbox", "show", "demo", "--json"], capsys).out)
    assert shown["id"] == 1 and "last_poll_at" in shown and "last_error" in shown
    assert json.loads(run_cli(["mailbox", "show", "1", "--json"], capsys).out) == shown
    for output in (listed.out, json.dumps(shown), run_cli(["mailbox", "list"], capsys).out, run_cli(["mailbox", "show", "1"], capsys).out):
        assert PW not in output
        assert Mailbox.get().secret not in output


def test_add_from_environment_variable(settings, capsys, monkeypatch):
    monkeypatch.setenv("IMAP_PW", "from-env")
    result = run_cli(
        [
            "mailbox",
            "add",
            "envbox",
            "--host",
            "imap.example.org",
            "--username",
            "u",
            "--password-env",
            "IMAP_PW",
            "--folder",
            "INBOX",
            "--folder",
            "Support",
            "--interval",
            "300",
            "--priority",
            "high",
        ],
        capsys,
    )
    assert result.code == 0, result.err
    mb = Mailbox.get(Mailbox.name == "envbox")
    assert (mb.port, mb.security, mb.folders, mb.interval, mb.priority) == (993, "ssl", ["INBOX", "Support"], 300, "high")
    assert crypto.decrypt(settings, mb.secret) == "from-env"


def test_password_is_never_taken_from_a_plain_argument(settings, capsys):
    result = run_cli(["mailbox", "add", "x", "--host", "h", "--username", "u", "--password", "pw"], capsys)
    assert result.code == 2
    assert Mailbox.select().count() == 0


def test_missing_password_env_is_a_usage_error(settings, capsys):
    result = run_cli(["mailbox", "add", "x", "--host", "h", "--username", "u", "--password-env", "NOPE_NOT_SET"], capsys)
    assert result.code == 2 and "NOPE_NOT_SET is not set" in result.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "port: 70000 is outside 1-65535"),
        (["--interval", "0"], "interval: must be at least 1 second"),
        (["--initial-sync", "since:yesterday"], "since:YYYY-MM-DD"),
    ],
)
def test_invalid_fields_are_named(settings, capsys, args, message):
    result = run_cli(["mailbox", "add", "x", "--host", "h", "--username", "u", "--password-stdin", *args], capsys, stdin="pw")
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_import_reports_bad_rows_by_line_and_imports_good_ones(settings, capsys, tmp_path):
    csv_file = tmp_path / "boxes.csv"
    csv_file.write_text(
        "name,host,port,security,username,password,folders,interval,priority\n"
        "a,imap.a.org,993,ssl,alice,pw-a,INBOX;Archive,120,high\n"
        "b,imap.b.org,notaport,ssl,bob,pw-b,,,\n"
        "c,imap.c.org,143,starttls,carol,pw-c\n"
        "d,imap.d.org,143,tls,dave,pw-d,,,\n"
        "e,imap.e.org,143,plain,erin,,,,\n"
        "a,imap.a2.org,993,ssl,alice,pw-a,,,\n"
        "only,three,fields\n"
    )
    result = run_cli(["mailbox", "import", str(csv_file)], capsys)
    assert result.code == 0
    assert "imported 2 new, updated 0, rejected 5 row(s)" in result.out
    err_lines = [line for line in result.err.splitlines() if "boxes.csv:" in line]
    assert [line.split(":")[1] for line in err_lines] == ["3", "5", "6", "7", "8"]
    assert "port: 'notaport' is not a number" in result.err
    assert "security: 'tls' is not one of ssl, starttls, plain" in result.err
    assert "password: must not be empty" in result.err
    assert "already appears on line 2" in result.err
    assert "expected 6 to 9 fields" in result.err
    a = Mailbox.get(Mailbox.name == "a")
    assert (a.folders, a.interval, a.priority) == (["INBOX", "Archive"], 120, "high")
    assert "pw-a" not in result.out + result.err


def test_reimport_updates_instead_of_duplicating(settings, capsys, tmp_path):
    csv_file = tmp_path / "boxes.csv"
    csv_file.write_text("a,imap.a.org,993,ssl,alice,pw-a\nb,imap.b.org,993,ssl,bob,pw-b\n")
    assert "imported 2 new" in run_cli(["mailbox", "import", str(csv_file)], capsys).out
    csv_file.write_text("a,imap.a.org,993,ssl,alice,pw-a2,,600\nb,imap.b.org,993,ssl,bob,pw-b\n")
    result = run_cli(["mailbox", "import", str(csv_file)], capsys)
    assert "imported 0 new, updated 2" in result.out
    assert Mailbox.select().count() == 2
    a = Mailbox.get(Mailbox.name == "a")
    assert a.interval == 600 and crypto.decrypt(settings, a.secret) == "pw-a2"


def test_changed_password_clears_auth_error(settings, capsys):
    add(capsys)
    Mailbox.update(state="auth_error", consecutive_failures=1).execute()
    add(capsys)  # same password: still parked
    assert Mailbox.get().state == "auth_error"
    add(capsys, password="new-password")
    assert Mailbox.get().state == "ok"


def test_import_of_a_missing_file_is_one_line(settings, capsys, tmp_path):
    result = run_cli(["mailbox", "import", str(tmp_path / "nope.csv")], capsys)
    assert result.code == 2 and result.err.startswith("error: cannot read")


def test_pause_and_resume(settings, capsys):
    add(capsys)
    assert run_cli(["mailbox", "pause", "demo"], capsys).code == 0
    assert json.loads(run_cli(["mailbox", "show", "demo", "--json"], capsys).out)["state"] == "paused"
    Mailbox.update(state="auth_error").execute()
    assert run_cli(["mailbox", "resume", "1"], capsys).code == 0
    mb = Mailbox.get()
    assert (mb.paused, mb.state) == (False, "ok")


def test_remove_needs_yes_and_cascades_to_rows_and_unshared_blobs(settings, capsys):
    add(capsys, "one")
    add(capsys, "two")
    one, two = Mailbox.get(Mailbox.name == "one"), Mailbox.get(Mailbox.name == "two")
    store = open_store(settings)
    own, shared, att = store.put(b"only in one"), store.put(b"in both"), store.put(b"attachment of one")
    FolderState.create(mailbox=one, name="INBOX", uidvalidity=1, last_uid=2)
    m1 = Message.create(mailbox=one, folder="INBOX", uidvalidity=1, uid=1, sha256=own, size=11)
    Message.create(mailbox=one, folder="INBOX", uidvalidity=1, uid=2, sha256=shared, size=7)
    Message.create(mailbox=two, folder="INBOX", uidvalidity=1, uid=1, sha256=shared, size=7)
    Attachment.create(message=m1, filename="../../etc/passwd", content_type="text/plain", size=17, sha256=att)
    PollRun.create(mailbox=one, outcome="ok")

    refused = run_cli(["mailbox", "remove", "one"], capsys)
    assert refused.code == 2 and "--yes" in refused.err
    assert Mailbox.select().count() == 2

    result = run_cli(["mailbox", "remove", "one", "--yes"], capsys)
    assert result.code == 0, result.err
    assert "2 message(s), 1 attachment row(s), 2 blob(s)" in result.out
    assert [m.name for m in Mailbox.select()] == ["two"]
    assert Message.select().count() == 1 and Attachment.select().count() == 0
    assert FolderState.select().count() == 0 and PollRun.select().count() == 0
    assert not store.exists(own) and not store.exists(att)
    assert store.exists(shared)
    again = run_cli(["mailbox", "remove", str(one.id), "--yes"], capsys)
    assert again.code == 1 and "no mailbox" in again.err
