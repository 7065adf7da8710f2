"""imap.connect: verified TLS, STARTTLS, timeouts, and every failure as the right mailq error.

No database is involved, so these run once (not per backend).
"""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet

from mailq import config, crypto, imap
from mailq.errors import AuthError, ImapConnectionError, ImapTimeoutError, TLSError
from mailq.models import Mailbox

from .imap_helpers import closed_port, mute_server


@pytest.fixture
def imap_settings(tmp_path):
    return config.load(
        {
            "MAILQ_VAR_DIR": str(tmp_path),
            "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
            "MAILQ_CONNECT_TIMEOUT": "1",
            "MAILQ_READ_TIMEOUT": "1.5",
        },
        env_file=None,
    )


def _mailbox(settings, user, password, port, security="plain", host="127.0.0.1", ca_file=None) -> Mailbox:
    return Mailbox(
        name="t", host=host, port=port, security=security, username=user, ca_file=ca_file, secret=crypto.encrypt(settings, password)
    )


@pytest.mark.parametrize("security", ["plain", "ssl", "starttls"])
def test_connects_logs_in_and_reads_capabilities(imap_settings, dovecot, mail_user, security):
    user, pw = mail_user
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port
    mailbox = _mailbox(imap_settings, user, pw, port, security, ca_file=str(dovecot.cert_path))
    with imap.connect(imap_settings, mailbox) as session:
        assert session.has("CONDSTORE") and session.has("IMAP4REV1")
        assert "INBOX" in session.list_folders()
        if security != "plain":
            assert session.client.socket().version().startswith("TLS")


def test_the_global_ca_file_is_used_when_the_mailbox_has_none(imap_settings, dovecot, mail_user):
    user, pw = mail_user
    with_ca = imap_settings.replace(ca_file=str(dovecot.cert_path))
    probe = imap.probe(with_ca, _mailbox(with_ca, user, pw, dovecot.imaps_port, "ssl"))
    assert "INBOX" in probe.folders and "IDLE" in probe.capabilities


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_a_self_signed_certificate_is_rejected_by_default(imap_settings, dovecot, mail_user, security):
    user, pw = mail_user
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port
    with pytest.raises(TLSError, match="not trusted.*--ca-file"):
        with imap.connect(imap_settings, _mailbox(imap_settings, user, pw, port, security)):
            pass


def test_a_wrong_password_is_an_auth_error_that_never_shows_the_password(imap_settings, dovecot, mail_user):
    user, _ = mail_user
    secret = "s3cret-Wrong-pw"
    with pytest.raises(AuthError) as info:
        with imap.connect(imap_settings, _mailbox(imap_settings, user, secret, dovecot.imap_port)):
            pass
    text = str(info.value)
    assert f"login rejected by 127.0.0.1 for user {user}" in text and "check the password" in text
    assert secret not in text and secret not in repr(info.value.orig)


def test_a_closed_port_is_a_connection_error(imap_settings):
    with pytest.raises(ImapConnectionError, match="refused"):
        with imap.connect(imap_settings, _mailbox(imap_settings, "u", "p", closed_port())):
            pass


def test_an_unresolvable_host_is_a_connection_error(imap_settings):
    with pytest.raises(ImapConnectionError, match="cannot resolve host no-such-host.invalid"):
        with imap.connect(imap_settings, _mailbox(imap_settings, "u", "p", 993, "ssl", host="no-such-host.invalid")):
            pass


@pytest.mark.parametrize("security", ["plain", "ssl"])
def test_a_server_that_never_speaks_times_out_within_the_connect_timeout(imap_settings, security):
    with mute_server() as port:
        started = time.monotonic()
        with pytest.raises(ImapTimeoutError, match="did not answer after 1s"):
            with imap.connect(imap_settings, _mailbox(imap_settings, "u", "p", port, security)):
                pass
        assert time.monotonic() - started < imap_settings.connect_timeout + 1


def test_a_server_that_stops_after_its_greeting_times_out_within_the_connect_timeout(imap_settings):
    """Greeting, CAPABILITY and LOGIN are all part of connecting: one MAILQ_CONNECT_TIMEOUT in total."""
    with mute_server(greeting=b"* OK ready\r\n") as port:
        started = time.monotonic()
        with pytest.raises(ImapTimeoutError, match="too slow while logging in.*MAILQ_CONNECT_TIMEOUT"):
            with imap.connect(imap_settings, _mailbox(imap_settings, "u", "p", port)):
                pass
        elapsed = time.monotonic() - started
    assert imap_settings.connect_timeout - 0.1 < elapsed < imap_settings.connect_timeout + 0.5


def test_server_replies_map_to_the_right_error_class():
    import imaplib

    from mailq.errors import ProtocolError

    mailbox = Mailbox(host="outlook.example", port=993, username="bob")
    throttled = imap.map_error(imaplib.IMAP4.error("BAD Request is throttled. Suggested Backoff Time: 3000 ms"), mailbox, "fetching")
    assert isinstance(throttled, ImapConnectionError) and "will back off" in str(throttled)
    not_connected = imap.map_error(imaplib.IMAP4.error("NO User is authenticated but not connected."), mailbox, "opening folder 'INBOX'")
    assert isinstance(not_connected, AuthError)
    assert isinstance(imap.map_error(imaplib.IMAP4.abort("socket error: EOF"), mailbox, "fetching"), ImapConnectionError)
    assert isinstance(imap.map_error(imaplib.IMAP4.error("NO Mailbox doesn't exist: Nope"), mailbox, "x"), ProtocolError)
