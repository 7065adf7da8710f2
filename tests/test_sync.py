"""The sync engine against the real Dovecot, on SQLite and PostgreSQL: nothing lost, nothing twice.

The exactly-once, idempotence, read-only, UIDVALIDITY and hostile-corpus tests
also run against Cyrus (``imap_server``: a second server implementation).
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import signal
import subprocess
import sys
from datetime import datetime

from mailq import imap
from mailq.models import Attachment, FolderState, Mailbox, Message, PollRun
from mailq.poll import poll_mailbox
from mailq.storage import open_store
from mailq.sync import Budget, sync_folder
from tests.testbed.mailgen import make_messages

from .corpus import CORPUS
from .helpers import wait_for
from .imap_helpers import add_mailbox, append, rows, server_view, stored_bytes
from .server_helpers import cyrus, imap_server, server_user  # noqa: F401 (fixtures)

BINARY_BODY = b"From: nul@example.com\r\nSubject: binary body\r\nMessage-ID: <nul@example.com>\r\n\r\nbefore\x00after\r\nbare\nlf\r\n"
"""NUL bytes and a bare LF in the body: Cyrus takes it (as a ~{n} literal) and sends it back as ~{n}."""


def _hashes(raws) -> collections.Counter:
    return collections.Counter(hashlib.sha256(r).hexdigest() for r in raws)


def test_first_poll_stores_every_message_byte_for_byte_then_only_new_mail(settings, imap_server, server_user):
    user, pw = server_user
    imap_server.deliver_many((user, raw) for raw in make_messages(12, seed=1, max_bytes=150_000))
    mailbox = add_mailbox(settings, user, pw, port=imap_server.imap_port)
    committed_when_called = []

    def on_batch(ids):
        committed_when_called.append((len(ids), Message.select().where(Message.id.in_(ids)).count()))

    first = poll_mailbox(settings.replace(fetch_batch=5), mailbox.id, on_batch=on_batch)
    assert (first.outcome, first.new, first.folders_checked, first.more_pending) == ("ok", 12, 1, False)
    assert [n for n, _ in committed_when_called] == [5, 5, 2]
    assert all(n == seen for n, seen in committed_when_called)  # on_batch runs after the commit

    server = server_view(imap_server, user, pw)
    assert stored_bytes(settings, mailbox.id) == {uid: raw for uid, (raw, _) in server.items()}
    store = open_store(settings)
    attachments = list(Attachment.select().join(Message).where(Message.mailbox == mailbox.id))
    assert attachments and all(store.exists(a.sha256) for a in attachments)
    assert all(r.subject and r.from_addr and r.date and r.message_id for r in rows(mailbox.id))

    second = poll_mailbox(settings, mailbox.id)
    assert (second.outcome, second.new) == ("ok", 0)

    imap_server.deliver_many((user, raw) for raw in make_messages(2, seed=2))
    third = poll_mailbox(settings, mailbox.id)
    assert (third.outcome, third.new) == ("ok", 2)
    server = server_view(imap_server, user, pw)
    assert stored_bytes(settings, mailbox.id) == {uid: raw for uid, (raw, _) in server.items()}
    assert len(rows(mailbox.id)) == 14

    # untouched: nothing flagged \Seen, nothing moved or deleted
    assert all(b"\\Seen" not in flags for _, flags in server.values())
    assert imap_server.message_count(user) == 14
    runs = list(PollRun.select().where(PollRun.mailbox == mailbox.id).order_by(PollRun.id))
    assert [(r.outcome, r.new_count) for r in runs] == [("ok", 12), ("ok", 0), ("ok", 2)]
    assert Mailbox.get_by_id(mailbox.id).state == "ok"


def test_condstore_skips_an_unchanged_folder_with_one_status(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(3, seed=3))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    store = open_store(settings)
    with imap.connect(settings, mailbox) as session:
        assert session.has("CONDSTORE")
        first = sync_folder(session, store, settings, mailbox, "INBOX", Budget.from_settings(settings))
        again = sync_folder(session, store, settings, mailbox, "INBOX", Budget.from_settings(settings))
    assert (first.new, first.unchanged) == (3, False)
    assert (again.new, again.unchanged) == (0, True)
    dovecot.deliver(user, make_messages(1, seed=4)[0])
    with imap.connect(settings, mailbox) as session:
        moved = sync_folder(session, store, settings, mailbox, "INBOX", Budget.from_settings(settings))
    assert (moved.new, moved.unchanged) == (1, False)


def test_several_folders_a_missing_one_and_one_created_later(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.create_folder(user, "Archive")
    dovecot.deliver_many(((user, raw) for raw in make_messages(2, seed=5)), "INBOX")
    dovecot.deliver_many(((user, raw) for raw in make_messages(3, seed=6)), "Archive")
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port, folders=["INBOX", "Archive", "Nope"])

    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.new, result.folders_checked) == ("error", 5, 3)
    assert result.error_class == "folder" and "'Nope'" in result.error_text
    assert len(rows(mailbox.id, "INBOX")) == 2 and len(rows(mailbox.id, "Archive")) == 3
    flagged = Mailbox.get_by_id(mailbox.id)
    assert flagged.state == "failing" and "Nope" in flagged.last_error
    assert flagged.next_attempt_at is None  # the healthy folders keep their cadence

    dovecot.create_folder(user, "Later")
    dovecot.deliver(user, make_messages(1, seed=7)[0], "Later")
    Mailbox.update(folders=["INBOX", "Archive", "Later"]).where(Mailbox.id == mailbox.id).execute()
    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.new, result.folders_checked) == ("ok", 1, 3)
    assert stored_bytes(settings, mailbox.id, "Later") == {uid: raw for uid, (raw, _) in server_view(dovecot, user, pw, "Later").items()}
    assert Mailbox.get_by_id(mailbox.id).state == "ok"


def _uidvalidity_change_keeps_every_message_once(settings, dovecot, user, pw, change):
    twin = CORPUS[8][1]
    assert twin == CORPUS[9][1]
    dovecot.deliver_many((user, raw) for raw in make_messages(6, seed=8) + [twin, twin])
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    assert poll_mailbox(settings, mailbox.id).new == 8
    before = {r.id: r.sha256 for r in rows(mailbox.id)}
    old_validity = FolderState.get(FolderState.mailbox == mailbox.id).uidvalidity

    change()
    dovecot.deliver(user, make_messages(1, seed=9)[0])
    result = poll_mailbox(settings.replace(fetch_batch=3), mailbox.id)
    assert (result.outcome, result.new) == ("ok", 1)

    server = server_view(dovecot, user, pw)
    after = rows(mailbox.id)
    new_validity = FolderState.get(FolderState.mailbox == mailbox.id).uidvalidity
    assert new_validity != old_validity
    assert {r.uidvalidity for r in after} == {new_validity}
    assert len(after) == 9 and _hashes(raw for raw, _ in server.values()) == collections.Counter(r.sha256 for r in after)
    assert stored_bytes(settings, mailbox.id) == {uid: raw for uid, (raw, _) in server.items()}
    assert {r.id: r.sha256 for r in after if r.id in before} == before  # moved, not re-inserted
    assert poll_mailbox(settings, mailbox.id).new == 0


def test_uidvalidity_reset_neither_duplicates_nor_loses(settings, imap_server, server_user):
    user, pw = server_user
    _uidvalidity_change_keeps_every_message_once(settings, imap_server, user, pw, lambda: imap_server.reset_uidvalidity(user))


def test_renumbered_uids_neither_duplicate_nor_lose(settings, dovecot, mail_user):
    user, pw = mail_user

    def renumber():
        # Dovecot hands out the next UIDVALIDITY from a per-user counter (max(last + 1, now)), so it changes
        dovecot.renumber_uids(user)

    _uidvalidity_change_keeps_every_message_once(settings, dovecot, user, pw, renumber)


def test_a_backlog_is_worked_off_over_several_polls_within_the_budget(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(10, seed=10, max_bytes=20_000))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    small = settings.replace(poll_budget_messages=4, fetch_batch=2)
    beats = []
    outcomes = [poll_mailbox(small, mailbox.id, heartbeat=lambda: beats.append(1)) for _ in range(3)]
    assert [(r.outcome, r.new, r.more_pending) for r in outcomes] == [("partial", 4, True), ("partial", 4, True), ("ok", 2, False)]
    assert len(beats) >= 5
    assert sorted(r.uid for r in rows(mailbox.id)) == sorted(server_view(dovecot, user, pw))


def test_initial_sync_new_takes_only_mail_arriving_later(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(3, seed=11))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port, initial_sync="new")
    assert poll_mailbox(settings, mailbox.id).new == 0
    later = make_messages(1, seed=12)[0]
    dovecot.deliver(user, later)
    assert poll_mailbox(settings, mailbox.id).new == 1
    assert [open_store(settings).get(r.sha256) for r in rows(mailbox.id)] == [later]


def test_initial_sync_since_a_date_then_every_new_uid(settings, dovecot, mail_user):
    user, pw = mail_user
    old, recent, late_old = make_messages(3, seed=13)
    append(dovecot, user, pw, old, when=datetime(2020, 5, 1, 12, 0))
    append(dovecot, user, pw, recent, when=datetime(2024, 6, 1, 12, 0))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port, initial_sync="since:2024-01-01")
    assert poll_mailbox(settings, mailbox.id).new == 1
    # after the first sync, UIDs rule: a late-arriving message with an old date is still taken
    append(dovecot, user, pw, late_old, when=datetime(2019, 1, 1, 12, 0))
    assert poll_mailbox(settings, mailbox.id).new == 1
    assert [open_store(settings).get(r.sha256) for r in rows(mailbox.id)] == [recent, late_old]


def test_hostile_corpus_is_stored_raw_and_nothing_lands_outside_the_blob_root(settings, imap_server, server_user, tmp_path):
    user, pw = server_user
    limit = 400_000  # above every corpus message
    assert max(len(raw) for _, raw in CORPUS) < limit
    oversize = b"From: big@example.com\r\nSubject: too big\r\nMessage-ID: <big@example.com>\r\n\r\n" + (b"x" * 78 + b"\r\n") * 6000
    # Cyrus refuses some of the corpus at APPEND (empty, NUL or bare LF in headers): what it stored is the corpus there
    stored_count = imap_server.deliver_many((user, raw) for raw in [raw for _, raw in CORPUS] + [BINARY_BODY, oversize])
    corpus_count = stored_count - 1
    assert corpus_count >= len(CORPUS) - 6
    mailbox = add_mailbox(settings, user, pw, port=imap_server.imap_port)
    before = {p for p in tmp_path.rglob("*")}
    result = poll_mailbox(settings.replace(max_message_bytes=limit, fetch_batch=7), mailbox.id)
    assert (result.outcome, result.new, result.skipped) == ("ok", corpus_count + 1, 1)

    server = server_view(imap_server, user, pw)
    stored = rows(mailbox.id)
    assert len(stored) == corpus_count + 1
    skipped = [r for r in stored if r.skipped_reason]
    assert len(skipped) == 1 and skipped[0].sha256 is None and skipped[0].size > limit
    assert skipped[0].subject == "too big" and "MAILQ_MAX_MESSAGE_BYTES" in skipped[0].skipped_reason
    assert stored_bytes(settings, mailbox.id) == {uid: raw for uid, (raw, _) in server.items() if len(raw) <= limit}
    assert any(r.parse_defects for r in stored)
    raws = [raw for raw, _ in server.values()]
    kept = {
        "nul": any(b"\x00" in r for r in raws),
        "bare_lf": any(re.search(rb"[^\r]\n", r) for r in raws),
        "8bit_headers": any(re.search(rb"[\x80-\xff]", r.split(b"\r\n\r\n")[0]) for r in raws),
    }
    # what each server sends back of what was delivered (each stored exactly as sent, above):
    # Dovecot turns NUL into 0x80 and bare LF into CRLF, keeps 8-bit headers; Cyrus keeps NUL and bare LF
    # (sent back in ~{n} literals) and replaces 8-bit header bytes (munge8bit)
    assert (
        kept
        == {
            "dovecot": {"nul": False, "bare_lf": False, "8bit_headers": True},
            "cyrus": {"nul": True, "bare_lf": True, "8bit_headers": False},
        }[imap_server.name]
    )

    blob_root = open_store(settings).root
    created = {p for p in tmp_path.rglob("*")} - before
    outside = {p for p in created if p.is_file() and blob_root not in p.parents}
    assert {p.name for p in outside} <= {"mailq.db", "mailq.db-wal", "mailq.db-shm"}
    hex_path = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})$")  # ROOT/ab/ab...: named by the hash alone
    assert all(hex_path.match(str(p.relative_to(blob_root))) for p in blob_root.rglob("*") if p.is_file())
    names = {a.filename for a in Attachment.select().join(Message).where(Message.mailbox == mailbox.id)}
    assert "../../../../etc/passwd" in names  # kept for display, never used as a path
    assert all(b"\\Seen" not in flags for _, flags in server.values())


def test_a_poll_killed_midway_then_repeated_stores_every_message_exactly_once(settings, imap_server, server_user):
    user, pw = server_user
    count = 600
    imap_server.deliver_many((user, raw) for raw in make_messages(count, seed=14, max_bytes=6_000))
    imap_server.index()
    mailbox = add_mailbox(settings, user, pw, port=imap_server.imap_port)
    env = {**os.environ, **settings.as_env(), "MAILQ_FETCH_BATCH": "10"}
    code = (
        "import sys; from mailq import config, db; from mailq.poll import poll_mailbox; "
        "s = config.load(env_file=None); db.bind(s.database_url); poll_mailbox(s, int(sys.argv[1]))"
    )
    worker = subprocess.Popen([sys.executable, "-c", code, str(mailbox.id)], env=env)
    try:
        wait_for(lambda: Message.select().where(Message.mailbox == mailbox.id).count() > 0, timeout=30, what="the first committed batch")
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
    at_kill = Message.select().where(Message.mailbox == mailbox.id).count()
    assert 0 < at_kill < count, "the poll finished before it could be killed: use a bigger mailbox"

    result = poll_mailbox(settings, mailbox.id)
    assert result.outcome == "ok" and result.new == count - at_kill
    stored = rows(mailbox.id)
    server = server_view(imap_server, user, pw)
    assert sorted(r.uid for r in stored) == sorted(server)
    assert collections.Counter(r.sha256 for r in stored) == _hashes(raw for raw, _ in server.values())
    assert FolderState.get(FolderState.mailbox == mailbox.id).last_uid == max(server)


def test_the_uid_n_star_artefact_is_never_fetched_again(settings, dovecot, mail_user, monkeypatch):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(3, seed=15))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    assert poll_mailbox(settings, mailbox.id).new == 3
    top = max(server_view(dovecot, user, pw))
    with imap.connect(settings, mailbox) as session:  # the pitfall is real on this server
        session.examine("INBOX")
        assert session.search(["UID", f"{top + 1}:*"]) == [top]

    # without the CONDSTORE shortcut, the next poll searches UID top+1:* and must fetch nothing
    monkeypatch.setattr(imap.Session, "has", lambda self, cap: cap.upper() in self.capabilities - {"CONDSTORE"})
    fetched = []
    real_fetch = imap.Session.fetch
    monkeypatch.setattr(imap.Session, "fetch", lambda self, uids, items: fetched.append(list(uids)) or real_fetch(self, uids, items))
    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.new, fetched) == ("ok", 0, [])


def test_exchanges_no_longer_exist_reply_is_a_partial_success():
    from mailq.errors import ProtocolError
    from mailq.fetcher import fetch_tolerant

    class ExchangeLike:  # Dovecot answers OK for expunged UIDs; Exchange answers NO for the whole command
        def fetch(self, uids, items):
            if 2 in uids:
                raise ProtocolError("outlook refused fetching: Some of the requested messages no longer exist")
            return {u: {b"BODY[]": b"x"} for u in uids}

    assert sorted(fetch_tolerant(ExchangeLike(), [1, 2, 3], "BODY.PEEK[]")) == [1, 3]
