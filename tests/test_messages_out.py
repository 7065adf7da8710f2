"""Out of the store: ``mailq messages raw|attachment|export`` and ``mailq.api``, against a real Dovecot.

``raw`` must hand out exactly the server's ``BODY.PEEK[]`` bytes for the hostile
corpus; an mbox export re-imported into another Dovecot user yields the same
sha256s; both exports are resumable.
"""

from __future__ import annotations

import collections
import hashlib
from datetime import datetime

import pytest

from mailq import api
from mailq.cli import main
from mailq.errors import NotFoundError, NotStoredError
from mailq.export import STATE_SUFFIX, read_mbox
from mailq.models import Attachment, Message
from mailq.poll import poll_mailbox
from tests.corpus_hostile import all_messages

from .imap_helpers import add_mailbox, rows, server_view

FROM_LINES = b"From: a@example.com\r\nSubject: from lines\r\n\r\nFrom here on\r\n>From quoted\r\n>>From twice\r\nFrom"
MULTIPART = (
    b"From: Ann <ann@example.com>\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n"
    b"--c\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello text \xc3\xa9\r\n"
    b"--c\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>html</b></p>\r\n--c--\r\n"
    b"--b\r\nContent-Type: application/pdf; name=r.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="../../r.pdf"\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n'
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(args: list[str], capsysbinary) -> tuple[int, bytes, str]:
    capsysbinary.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


@pytest.fixture
def hostile_box(settings, dovecot, mail_user):
    user, pw = mail_user
    corpus = [raw for _, raw in all_messages()] + [FROM_LINES, MULTIPART]
    dovecot.deliver_many((user, raw) for raw in corpus)
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    assert poll_mailbox(settings.replace(fetch_batch=25), mailbox.id).outcome == "ok"
    return mailbox, server_view(dovecot, user, pw)


def test_raw_hands_out_the_servers_exact_bytes_for_the_hostile_corpus(hostile_box, capsysbinary):
    mailbox, server = hostile_box
    stored = rows(mailbox.id)
    assert len(stored) == len(server) >= 40
    for row in stored:
        code, out, err = _cli(["messages", "raw", str(row.id)], capsysbinary)
        assert (code, err) == (0, "")
        assert out == server[row.uid][0], f"message {row.id} (uid {row.uid}) differs from BODY.PEEK[]"


def test_attachments_come_out_decoded_and_to_a_file(hostile_box, capsysbinary, tmp_path):
    mailbox, _ = hostile_box
    atts = list(Attachment.select().join(Message).where(Message.mailbox == mailbox.id))
    assert len(atts) > 5
    for att in atts:
        code, out, _ = _cli(["messages", "attachment", str(att.id)], capsysbinary)
        assert code == 0 and _sha(out) == att.sha256 and len(out) == att.size
    pdf = next(a for a in atts if a.filename == "../../r.pdf")
    target = tmp_path / "out.pdf"
    assert _cli(["messages", "attachment", str(pdf.id), "-o", str(target)], capsysbinary)[0] == 0
    assert target.read_bytes() == b"%PDF-1.4\n"
    assert not (tmp_path.parent / "r.pdf").exists()


def test_unknown_ids_and_skipped_messages_are_clear_errors(settings, capsysbinary):
    code, out, err = _cli(["messages", "raw", "999"], capsysbinary)
    assert (code, out) == (1, b"") and err == "error: no message with id 999: see `mailq messages list`\n"
    code, _, err = _cli(["messages", "attachment", "7"], capsysbinary)
    assert code == 1 and "no attachment with id 7" in err and "Traceback" not in err
    box = add_mailbox(settings, "u", "p", port=1)
    big = Message.create(mailbox=box, folder="INBOX", uidvalidity=1, uid=1, size=10**9, skipped_reason="larger than the limit")
    code, _, err = _cli(["messages", "raw", str(big.id)], capsysbinary)
    assert code == 1 and err == f"error: message {big.id} was not stored: larger than the limit\n"
    with pytest.raises(NotStoredError):
        api.raw(big.id)
    with pytest.raises(NotFoundError):
        api.get_message(12345)


def test_the_api_gives_metadata_bodies_parsed_mail_and_a_resumable_cursor(hostile_box):
    mailbox, server = hostile_box
    row = Message.get(Message.subject == "parts")
    info = api.get_message(row.id)
    assert (info.mailbox, info.from_addr, info.stored) == (mailbox.name, "Ann <ann@example.com>", True)
    assert [(a.filename, a.content_type, a.size) for a in info.attachments] == [("../../r.pdf", "application/pdf", 9)]
    assert api.attachment_bytes(info.attachments[0].id) == b"%PDF-1.4\n"
    assert api.raw(row.id) == server[row.uid][0]
    assert api.email_message(row.id)["subject"] == "parts"
    full = api.bodies(row.id)
    assert (full.text, full.html, full.text_truncated) == ("Hello text é", "<p>Hello <b>html</b></p>", False)
    cut = api.bodies(row.id, limit=5)
    assert (cut.text, cut.html, cut.text_truncated, cut.html_truncated) == ("Hello", "<p>He", True, True)

    ids = [m.id for m in api.messages_after(0, batch=7)]
    assert ids == sorted(r.id for r in rows(mailbox.id))
    assert [m.id for m in api.messages_after(ids[10], batch=4)] == ids[11:]
    assert list(api.messages_after(0, mailbox_id=mailbox.id + 1)) == []
    for m in api.messages_after(0):  # every body of the hostile corpus comes out without raising
        if m.stored:
            api.bodies(m.id, limit=1000)


def test_an_mbox_export_reimported_into_dovecot_has_the_same_sha256s_and_resumes(settings, dovecot, mail_user, capsysbinary, tmp_path):
    user, pw = mail_user
    corpus = [raw for _, raw in all_messages()] + [FROM_LINES, MULTIPART]
    half = len(corpus) // 2
    dovecot.deliver_many((user, raw) for raw in corpus[:half])
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    poll_mailbox(settings, mailbox.id)
    mbox = tmp_path / "out.mbox"
    code, out, err = _cli(["messages", "export", "--mbox", str(mbox)], capsysbinary)
    assert code == 0, err
    assert f"exported {half} message(s)" in out.decode()
    with open(mbox, "ab") as fh:  # an interrupted run wrote half a message past the recorded end
        fh.write(b"From mailq-0@localhost Mon Jan  1 00:00:00 2024\nSubject: torn\r\n\r\nhalf a mess")
    dovecot.deliver_many((user, raw) for raw in corpus[half:])
    poll_mailbox(settings, mailbox.id)
    code, out, err = _cli(["messages", "export", "--mbox", str(mbox)], capsysbinary)
    assert code == 0 and f"exported {len(corpus) - half} message(s)" in out.decode() and f"{half} already there" in out.decode()

    exported = list(read_mbox(mbox))
    assert collections.Counter(map(_sha, exported)) == collections.Counter(r.sha256 for r in rows(mailbox.id))
    other, other_pw = dovecot_user(dovecot)
    dovecot.deliver_many((other, raw) for raw in exported)
    reimported = [raw for raw, _ in server_view(dovecot, other, other_pw).values()]
    assert collections.Counter(map(_sha, reimported)) == collections.Counter(r.sha256 for r in rows(mailbox.id))
    assert len(reimported) == len(corpus)

    code, _, err = _cli(["messages", "export", "--mbox", str(mbox), "--mailbox", str(mailbox.id)], capsysbinary)
    assert code == 2 and "other options" in err
    (tmp_path / f"out.mbox{STATE_SUFFIX}").unlink()
    code, _, err = _cli(["messages", "export", "--mbox", str(mbox)], capsysbinary)
    assert code == 2 and "exists and no unfinished export" in err


def dovecot_user(dovecot) -> tuple[str, str]:
    import uuid

    name = f"reimport{uuid.uuid4().hex[:8]}"
    dovecot.add_user(name, f"pw-{name}")
    return name, f"pw-{name}"


def test_an_eml_export_writes_exact_files_and_a_rerun_only_fills_gaps(hostile_box, capsysbinary, tmp_path):
    mailbox, server = hostile_box
    target = tmp_path / "eml"
    code, out, _ = _cli(["messages", "export", "--eml", str(target), "--mailbox", mailbox.name], capsysbinary)
    assert code == 0
    stored = {r.id: r for r in rows(mailbox.id)}
    files = {int(p.stem): p.read_bytes() for p in target.glob("*.eml")}
    assert files == {i: server[r.uid][0] for i, r in stored.items()}
    assert list(target.glob(".*")) == []
    first = min(files)
    (target / f"{first}.eml").unlink()
    code, out, _ = _cli(["messages", "export", "--eml", str(target)], capsysbinary)
    assert code == 0 and "exported 1 message(s)" in out.decode() and f"{len(files) - 1} already there" in out.decode()
    assert (target / f"{first}.eml").read_bytes() == files[first]
    code, out, _ = _cli(["messages", "export", "--eml", str(target), "--since", datetime(2100, 1, 1).strftime("%Y-%m-%d")], capsysbinary)
    assert code == 0 and "exported 0 message(s)" in out.decode()
    code, _, err = _cli(["messages", "export", "--eml", str(target), "--since", "yesterday"], capsysbinary)
    assert code == 2 and "YYYY-MM-DD" in err


def test_raw_through_a_real_pipe_is_byte_exact(hostile_box, tmp_path):
    import os
    import subprocess
    import sys

    mailbox, server = hostile_box
    row = max(rows(mailbox.id), key=lambda r: r.size)
    env = {**os.environ, **api.config.get().as_env(), "MAILQ_VAR_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "mailq", "messages", "raw", str(row.id)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == server[row.uid][0]

    import pty

    leader, follower = pty.openpty()  # a real terminal on stdout: mail bytes must not reach it
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mailq", "messages", "raw", str(row.id)], env=env, stdout=follower, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2 and b"refusing to write message" in proc.stderr and b"-o FILE" in proc.stderr
