"""CLI output a person reads: tables one line per row at 80 columns, whole hashes, poll --wait outcomes, short durations."""

from __future__ import annotations

import subprocess
import sys

from mailq import ops
from mailq.models import Message
from mailq.text import span

from .helpers import run_cli, run_cli_process, wait_for
from .imap_helpers import add_mailbox, append, closed_port

LONG = "a-rather-long-name-that-would-wrap-" * 2


def _mail(n: int) -> bytes:
    return (
        f"From: Someone With A Long Display Name <someone.with.a.long.address.{n}@subdomain.example.com>\r\n"
        f"To: b@example.com\r\nSubject: {'A subject line that goes on and on ' * 3}{n}\r\n"
        f"Message-ID: <cli{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


def _env(settings) -> dict[str, str]:
    return {**settings.as_env(), "COLUMNS": "80"}


def _fits(text: str, rows: int) -> None:
    lines = text.rstrip("\n").splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert len(lines) == rows + 1, f"a row wrapped:\n{text}"  # the header and one line per row


def test_tables_fit_80_columns_when_piped(settings, dovecot, mail_user, capsys):
    user, password = mail_user
    for n in range(3):
        append(dovecot, user, password, _mail(n))
    box = add_mailbox(settings, user, password, port=dovecot.imap_port, name=LONG, folders=["INBOX", "Archive/2024/Projects"])
    add_mailbox(settings, user, password, port=dovecot.imap_port, name="short")
    assert run_cli(["poll", str(box.id), "--inline"], capsys).code in (0, 1)  # Archive may not exist: INBOX still syncs
    env = _env(settings)
    boxes = run_cli_process(["mailbox", "list"], env)
    assert boxes.code == 0, boxes.err
    _fits(boxes.out, 2)
    assert "state" in boxes.out.splitlines()[0]  # what matters stays
    messages = run_cli_process(["messages", "list"], env)
    assert messages.code == 0, messages.err
    _fits(messages.out, 3)
    assert "subject" in messages.out.splitlines()[0]


def test_messages_show_prints_the_whole_sha256(settings, dovecot, mail_user, capsys):
    user, password = mail_user
    append(dovecot, user, password, _mail(9))
    box = add_mailbox(settings, user, password, port=dovecot.imap_port)
    assert run_cli(["poll", str(box.id), "--inline"], capsys).code == 0
    message = Message.get()
    shown = run_cli_process(["messages", "show", str(message.id)], _env(settings))
    assert shown.code == 0, shown.err
    assert message.sha256 in shown.out.replace("\n", "")
    assert any(message.sha256 in line for line in shown.out.splitlines()), "the hash was split or shortened"


def test_poll_wait_prints_each_outcome_new_count_and_error(settings, dovecot, mail_user):
    user, password = mail_user
    append(dovecot, user, password, _mail(1))
    good = add_mailbox(settings, user, password, port=dovecot.imap_port, name="good")
    bad = add_mailbox(settings, user, password, port=closed_port(), name="bad")
    env = {**settings.as_env(), "COLUMNS": "200", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "mailq", "poll", str(good.id), str(bad.id), "--wait", "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # a burst worker started before the polls are enqueued finds nothing and leaves the waiter waiting
        wait_for(lambda: sum(q.queued for q in ops.queue_stats(settings)) >= 2, 30, "the two polls to be enqueued")
        worker = run_cli_process(["worker", "--burst"], settings.as_env())
        assert worker.code == 0, worker.err
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, out + err  # one poll failed
    lines = out.splitlines()
    assert lines[0].startswith("good: ok, 1 folder(s) checked, 1 new, 0 skipped, "), out
    assert lines[1].startswith("bad: error") and "—" in lines[1] and "refused" in lines[1].lower(), out


def test_durations_under_ten_seconds_keep_a_decimal():
    assert [span(v) for v in (0.04, 0.42, 9.94, 12.7, 75, 3700)] == ["0.0s", "0.4s", "9.9s", "12s", "1m", "1h01"]
