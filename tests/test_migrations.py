"""Migrations upgrade in place, are versioned, never drop data, and re-running is a no-op."""

from datetime import datetime

import peewee as pw

from mailq import migrations
from mailq.db import database
from mailq.models import Attachment, FolderState, Mailbox, Message, PollRun


def test_upgrade_from_first_migration_keeps_data(bare_settings):
    assert migrations.current_version() == 0
    assert migrations.upgrade(target=1) == [1]
    assert migrations.current_version() == 1
    # fill the version-1 schema with plain SQL (the models describe head, not v1)
    db = database.obj
    db.execute_sql(
        "INSERT INTO mailbox (name, host, port, security, username, secret, folders, interval, priority, "
        "initial_sync, paused, state, consecutive_failures, created_at, updated_at) VALUES "
        "('old', 'imap.example.org', 993, 'ssl', 'bob', 'gAAAA-token', '[\"INBOX\", \"Archive\"]', 120, 'high', "
        "'all', %s, 'failing', 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')" % ("false" if _pg(db) else "0")
    )
    mailbox_id = db.execute_sql("SELECT id FROM mailbox WHERE name = 'old'").fetchone()[0]
    db.execute_sql(f"INSERT INTO folder_state (mailbox_id, name, uidvalidity, last_uid) VALUES ({mailbox_id}, 'INBOX', 7, 41)")
    db.execute_sql(
        "INSERT INTO message (mailbox_id, folder, uidvalidity, uid, message_id, subject, size, sha256, created_at) "
        f"VALUES ({mailbox_id}, 'INBOX', 7, 41, '<a@b>', 'héllo', 10, '{'a' * 64}', '2026-01-02 00:00:00')"
    )
    message_id = db.execute_sql("SELECT id FROM message").fetchone()[0]
    db.execute_sql(
        f"INSERT INTO attachment (message_id, filename, content_type, size, sha256) VALUES ({message_id}, "
        f"'r.pdf', 'application/pdf', 3, '{'b' * 64}')"
    )
    db.execute_sql(
        f"INSERT INTO poll_run (mailbox_id, started_at, outcome, new_count) VALUES ({mailbox_id}, '2026-01-02 00:00:00', 'ok', 1)"
    )

    applied = migrations.upgrade()
    assert applied == [v for v, _, _ in migrations.MIGRATIONS if v > 1]
    assert migrations.current_version() == migrations.HEAD

    mb = Mailbox.get(Mailbox.name == "old")
    assert (mb.host, mb.port, mb.folders, mb.interval, mb.priority, mb.state, mb.consecutive_failures) == (
        "imap.example.org",
        993,
        ["INBOX", "Archive"],
        120,
        "high",
        "failing",
        3,
    )
    assert mb.secret == "gAAAA-token"
    assert (mb.auth, mb.oauth_app, mb.oauth_grant) == ("password", None, None)
    assert mb.push == "auto", "m0004: existing mailboxes push where the server offers IDLE"
    fs = FolderState.get()
    assert (fs.uidvalidity, fs.last_uid, fs.uidnext) == (7, 41, None)
    msg = Message.get()
    assert (msg.subject, msg.uid, msg.sha256, msg.preview) == ("héllo", 41, "a" * 64, None)
    assert msg.created_at == datetime(2026, 1, 2)
    assert Attachment.get().filename == "r.pdf"
    run = PollRun.get()
    assert (run.outcome, run.new_count, run.skipped_count) == ("ok", 1, 0)


def test_upgrade_twice_is_a_noop(bare_settings):
    assert migrations.upgrade() == [v for v, _, _ in migrations.MIGRATIONS]
    assert migrations.upgrade() == []
    assert migrations.current_version() == migrations.HEAD


def test_code_refuses_an_old_schema_with_a_clear_error(bare_settings, capsys):
    from tests.helpers import run_cli

    migrations.upgrade(target=1)
    result = run_cli(["mailbox", "list"], capsys)
    assert result.code == 1
    assert "run `mailq db upgrade`" in result.err


def test_cli_upgrade_reports_and_is_idempotent(bare_settings, capsys):
    from tests.helpers import run_cli

    first = run_cli(["db", "upgrade"], capsys)
    assert first.code == 0 and f"to {migrations.HEAD}" in first.out
    second = run_cli(["db", "upgrade"], capsys)
    assert second.code == 0 and "up to date" in second.out


def _pg(db) -> bool:
    return isinstance(db, pw.PostgresqlDatabase)
