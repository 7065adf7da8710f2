"""``mailq mailbox test``: good login, wrong password, closed port, self-signed certificate, DNS failure."""

from __future__ import annotations

import json

from .helpers import run_cli
from .imap_helpers import add_mailbox, closed_port


def test_a_good_login_prints_capabilities_and_folders(settings, dovecot, mail_user, capsys):
    user, pw = mail_user
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    result = run_cli(["mailbox", "test", str(mailbox.id), "--json"], capsys)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ok"] is True and "INBOX" in data["folders"] and "CONDSTORE" in data["capabilities"]
    text = run_cli(["mailbox", "test", str(mailbox.id)], capsys)
    assert text.code == 0 and f"login ok: {user}" in text.out


def test_a_wrong_password_fails_clearly_without_showing_it(settings, dovecot, mail_user, capsys):
    user, _ = mail_user
    mailbox = add_mailbox(settings, user, "Not-The-Password-42", port=dovecot.imap_port)
    result = run_cli(["mailbox", "test", str(mailbox.id)], capsys)
    assert result.code == 1
    assert f"login rejected by 127.0.0.1 for user {user}" in result.err and "check the password" in result.err
    assert "Not-The-Password-42" not in result.err + result.out and "Traceback" not in result.err


def test_a_closed_port_fails_as_refused(settings, capsys):
    mailbox = add_mailbox(settings, "u", "p", port=closed_port())
    result = run_cli(["mailbox", "test", str(mailbox.id)], capsys)
    assert result.code == 1 and "refused" in result.err and "check the host and port" in result.err


def test_a_self_signed_certificate_is_rejected_by_default_and_accepted_with_its_ca_file(settings, dovecot, mail_user, capsys):
    user, pw = mail_user
    strict = add_mailbox(settings, user, pw, port=dovecot.imaps_port, security="ssl", name="strict")
    result = run_cli(["mailbox", "test", str(strict.id)], capsys)
    assert result.code == 1 and "not trusted" in result.err and "--ca-file" in result.err

    trusting = add_mailbox(settings, user, pw, port=dovecot.imaps_port, security="ssl", name="trusting", ca_file=str(dovecot.cert_path))
    result = run_cli(["mailbox", "test", str(trusting.id)], capsys)
    assert result.code == 0 and "login ok" in result.out


def test_an_unresolvable_host_fails_as_a_dns_error(settings, capsys):
    mailbox = add_mailbox(settings, "u", "p", host="imap.no-such-host.invalid", port=993, security="ssl")
    result = run_cli(["mailbox", "test", str(mailbox.id)], capsys)
    assert result.code == 1 and "cannot resolve host imap.no-such-host.invalid" in result.err
