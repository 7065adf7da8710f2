"""Poll outcomes and health, ``mailq poll --inline`` and ``mailq messages``."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pytest

from mailq import health, mailboxes, sync
from mailq.models import Mailbox, PollRun, utcnow
from mailq.poll import poll_mailbox
from tests.testbed.mailgen import make_messages

from .helpers import run_cli, wait_for
from .imap_helpers import add_mailbox, closed_port, mute_server, server_view


def _last_run(mailbox_id: int) -> PollRun:
    return PollRun.select().where(PollRun.mailbox == mailbox_id).order_by(PollRun.id.desc()).get()


def test_a_wrong_password_parks_the_mailbox_after_one_login_until_the_password_changes(settings, dovecot, mail_user):
    user, pw = mail_user
    mailbox = add_mailbox(settings, user, "wrong-password", port=dovecot.imap_port)
    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.error_class) == ("auth_error", "auth")
    parked = Mailbox.get_by_id(mailbox.id)
    assert parked.state == "auth_error" and not health.is_due(parked)
    assert (_last_run(mailbox.id).outcome, _last_run(mailbox.id).error_class) == ("auth_error", "auth")

    attempts = wait_for(lambda: dovecot.login_attempts(user), what="the failed login in Dovecot's log")
    assert poll_mailbox(settings, mailbox.id, force=True).outcome == "skipped"  # no second login, even forced
    assert dovecot.login_attempts(user) == attempts

    spec = mailboxes.validate(name=mailbox.name, host="127.0.0.1", port=dovecot.imap_port, security="plain", username=user, password=pw)
    mailboxes.save(settings, spec)
    assert poll_mailbox(settings, mailbox.id).outcome == "ok"
    assert Mailbox.get_by_id(mailbox.id).state == "ok"


def test_a_closed_port_backs_off_exponentially_and_force_polls_anyway(settings):
    mailbox = add_mailbox(settings, "u", "p", port=closed_port())
    before = utcnow()
    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.error_class) == ("error", "connection") and "refused" in result.error_text
    failing = Mailbox.get_by_id(mailbox.id)
    assert failing.state == "failing" and failing.consecutive_failures == 1
    delay = (failing.next_attempt_at - before).total_seconds()
    assert settings.backoff_base * 0.8 - 1 <= delay <= settings.backoff_base * 1.2 + 1
    assert not health.is_due(failing) and health.is_due(failing, failing.next_attempt_at)

    assert poll_mailbox(settings, mailbox.id).outcome == "skipped"  # backing off
    assert poll_mailbox(settings, mailbox.id, force=True).outcome == "error"  # operator's "poll now"
    assert Mailbox.get_by_id(mailbox.id).consecutive_failures == 2
    assert [r.outcome for r in PollRun.select().where(PollRun.mailbox == mailbox.id)] == ["error", "error"]


def test_backoff_doubles_and_is_capped(settings):
    s = settings.replace(backoff_base=30, backoff_max=1800)
    rng = random.Random(1)
    delays = [health.backoff_seconds(s, n, rng) for n in range(1, 10)]
    assert 24 <= delays[0] <= 36 and 48 <= delays[1] <= 72 and 96 <= delays[2] <= 144
    assert max(delays) <= 1800 and delays[-1] >= 1800 * 0.8


def test_a_server_that_never_speaks_fails_within_the_timeout_as_failing(settings):
    with mute_server() as port:
        mailbox = add_mailbox(settings, "u", "p", port=port)
        started = time.monotonic()
        result = poll_mailbox(settings, mailbox.id)
    assert time.monotonic() - started < settings.connect_timeout + 1.5
    assert (result.outcome, result.error_class) == ("error", "timeout")
    assert Mailbox.get_by_id(mailbox.id).state == "failing"


def test_a_self_signed_certificate_fails_as_tls_and_the_mailbox_is_untouched(settings, dovecot, mail_user):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(2, seed=20))
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imaps_port, security="ssl")
    result = poll_mailbox(settings, mailbox.id)
    assert (result.outcome, result.error_class) == ("error", "tls")
    assert Mailbox.get_by_id(mailbox.id).state == "failing"
    server = server_view(dovecot, user, pw)
    assert len(server) == 2 and all(b"\\Seen" not in flags for _, flags in server.values())


def test_paused_mailboxes_are_skipped_even_when_forced(settings):
    mailbox = add_mailbox(settings, "u", "p", port=closed_port())
    mailboxes.set_paused(mailbox, True)
    result = poll_mailbox(settings, mailbox.id, force=True)
    assert (result.outcome, result.error_text) == ("skipped", "paused")
    assert PollRun.select().where(PollRun.mailbox == mailbox.id).count() == 0


def test_a_bug_is_recorded_as_a_failed_poll_and_re_raised(settings, dovecot, mail_user, monkeypatch):
    user, pw = mail_user
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("mailq.poll.sync_folder", broken)
    with pytest.raises(KeyError):
        poll_mailbox(settings, mailbox.id)
    run = _last_run(mailbox.id)
    assert (run.outcome, run.error_class) == ("error", "bug:KeyError") and run.finished_at is not None
    assert Mailbox.get_by_id(mailbox.id).next_attempt_at > utcnow() - timedelta(seconds=1)
    assert sync  # the real module is untouched


def test_poll_inline_then_messages_list_and_show(settings, dovecot, mail_user, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping: the subject must appear whole and literal
    user, pw = mail_user
    hostile = (
        b"From: =?utf-8?q?Evil_=1B[31m?= <e@example.com>\r\nSubject: [bold red]markup[/bold red] \x1b[2J\r\n"
        b"Message-ID: <hostile@example.com>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=\"../../x.pdf\"\r\n\r\n%PDF\r\n--b--\r\n"
    )
    dovecot.deliver_many((user, raw) for raw in make_messages(2, seed=21) + [hostile])
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)

    result = run_cli(["poll", str(mailbox.id), "--inline"], capsys)
    assert result.code == 0, result.err
    assert "ok, 1 folder(s) checked, 3 new, 0 skipped" in result.out
    again = run_cli(["poll", str(mailbox.id), "--inline", "--json"], capsys)
    data = json.loads(again.out)
    assert data[0]["outcome"] == "ok" and data[0]["new"] == 0 and data[0]["mailbox_id"] == mailbox.id

    listed = json.loads(run_cli(["messages", "list", "--mailbox", str(mailbox.id), "--json"], capsys).out)
    assert len(listed) == 3
    required = {
        "id",
        "mailbox_id",
        "folder",
        "uid",
        "uidvalidity",
        "message_id",
        "subject",
        "from",
        "date",
        "size",
        "sha256",
        "attachments",
    }
    assert all(required <= set(item) for item in listed)
    evil = next(item for item in listed if item["message_id"] == "<hostile@example.com>")
    assert evil["subject"].startswith("[bold red]markup[/bold red]")
    assert evil["attachments"][0]["filename"] == "../../x.pdf"
    assert len(json.loads(run_cli(["messages", "list", "--limit", "1", "--json"], capsys).out)) == 1

    shown = json.loads(run_cli(["messages", "show", str(evil["id"]), "--json"], capsys).out)
    assert shown["preview"] == "hello" and shown["sha256"] == evil["sha256"]

    for args in (["messages", "list"], ["messages", "show", str(evil["id"])]):
        text = run_cli(args, capsys)
        assert text.code == 0
        assert "[bold red]markup[/bold red]" in text.out and "\x1b" not in text.out and "\\x1b" in text.out

    missing = run_cli(["messages", "show", "999999"], capsys)
    assert missing.code == 1 and "no message with id 999999" in missing.err


def test_poll_inline_reports_a_failure_with_exit_status_1(settings, capsys):
    mailbox = add_mailbox(settings, "u", "p", port=closed_port())
    result = run_cli(["poll", str(mailbox.id), "--inline"], capsys)
    assert result.code == 1 and "error" in result.out and "refused" in result.out
