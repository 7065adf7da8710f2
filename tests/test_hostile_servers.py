"""One poll against each misbehaving server (tests/impostor.py): bounded, a clear error, nothing wrong stored.

Each mode's poll must end within a bound derived from the settings (the
worker-hold time), with the outcome and error the table in the README states,
and store exactly the messages the server really sent, once. SQLite only:
nothing here depends on the database backend (test_sync covers both).
"""

from __future__ import annotations

import re
import time

import pytest

from mailq.models import FolderState, Mailbox
from mailq.poll import poll_mailbox

from .imap_helpers import add_mailbox, rows, stored_bytes
from .impostor import BAD_UID, Impostor

NUL_MESSAGE = b"From: nul@example.com\r\nSubject: binary\r\nMessage-ID: <nul@example.com>\r\n\r\nbefore\x00after\r\nbare\nlf\r\n"
MESSAGES = [
    b"From: a@example.com\r\nSubject: one\r\nMessage-ID: <1@example.com>\r\n\r\nfirst\r\n",
    NUL_MESSAGE,
    b"From: c@example.com\r\nSubject: three\r\nMessage-ID: <3@example.com>\r\n\r\n" + b"third line\r\n" * 60,
]
CONNECT, READ = 1.0, 1.0


@pytest.fixture(params=["sqlite"])
def backend(request):
    return request.param


@pytest.fixture
def fast(settings):
    return settings.replace(connect_timeout=CONNECT, read_timeout=READ, min_transfer_rate=1024, backoff_base=30)


def _poll(fast, mode: str, **impostor):
    server = Impostor(mode, list(MESSAGES), delay=0.3, **impostor).start()
    try:
        mailbox = add_mailbox(fast, "u", "p", port=server.port, name=f"impostor-{mode}")
        started = time.monotonic()
        result = poll_mailbox(fast, mailbox.id)
        held = time.monotonic() - started
        return server, mailbox, result, held
    finally:
        server.stop()


def _all_stored_exactly(fast, mailbox, expected: dict[int, bytes]) -> None:
    stored = rows(mailbox.id)
    assert len({r.uid for r in stored}) == len(stored)  # never twice
    assert stored_bytes(fast, mailbox.id) == expected


@pytest.mark.parametrize(
    "mode, error, bound",
    [
        ("silent", r"did not answer after 1s \(no greeting", CONNECT),
        ("trickle_greeting", r"sent its greeting too slowly .*MAILQ_CONNECT_TIMEOUT", CONNECT),
        ("garbage", r"dropped the session while connecting", CONNECT),
        ("mute_examine", r"did not answer after 1s while opening folder 'INBOX'", CONNECT + READ),
        ("chatter", r"stalled while opening folder 'INBOX'.*MAILQ_MIN_TRANSFER_RATE", CONNECT + READ),
        ("endless_line", r"line longer than \d+ bytes", CONNECT + READ),
        ("bye_mid_fetch", r"dropped the session while fetching", CONNECT + READ),
        ("drop_each", r"dropped the session|closed the connection", CONNECT + READ),
        ("drop_login", r"dropped the connection while logging in .*not a rejected password", CONNECT + READ),
        ("trickle_literal", r"stalled while fetching BODY.PEEK\[\]", CONNECT + 2 * READ),
    ],
)
def test_a_misbehaving_server_fails_the_poll_quickly_with_a_clear_error(fast, mode, error, bound):
    server, mailbox, result, held = _poll(fast, mode)
    assert result.outcome == "error", result
    assert re.search(error, result.error_text), result.error_text
    assert "Traceback" not in result.error_text
    assert held < bound + 0.6, f"{mode} held the worker {held:.2f}s"
    box = Mailbox.get_by_id(mailbox.id)
    assert box.state == "failing" and box.consecutive_failures == 1
    if result.error_class != "folder":
        assert box.next_attempt_at is not None  # backing off
    _all_stored_exactly(fast, mailbox, {u: MESSAGES[u - 1] for u in [r.uid for r in rows(mailbox.id)]})


def test_a_huge_literal_behind_a_small_size_is_refused_unread_recorded_once_and_passed(fast):
    server = Impostor("huge_literal", list(MESSAGES)).start()
    try:
        mailbox = add_mailbox(fast, "u", "p", port=server.port)
        started = time.monotonic()
        first = poll_mailbox(fast, mailbox.id)
        held = time.monotonic() - started
        assert first.outcome == "error" and first.error_class == "refused", first
        assert f"for UID {BAD_UID} but began sending a {300 * 1024 * 1024}-byte message: refused unread" in first.error_text
        assert held < CONNECT + READ
        assert server.bytes_sent < 32 * 1024 * 1024  # the connection was closed, not drained
        (skipped,) = [r for r in rows(mailbox.id) if r.uid == BAD_UID]
        assert skipped.sha256 is None and "refused unread" in skipped.skipped_reason

        second = poll_mailbox(fast, mailbox.id, force=True)
        assert (second.outcome, second.new) == ("ok", 2), second
        third = poll_mailbox(fast, mailbox.id)
        assert (third.outcome, third.new) == ("ok", 0)
    finally:
        server.stop()
    assert sorted(r.uid for r in rows(mailbox.id)) == [1, 2, 3]  # the bad one once, as skipped
    _all_stored_exactly(fast, mailbox, {1: MESSAGES[0], 3: MESSAGES[2]})
    assert FolderState.get(FolderState.mailbox == mailbox.id).last_uid == 3
    assert server.connections == 3  # the refused UID was never asked for again


def test_binary_literals_are_read_as_literals(fast):
    """The Cyrus case: BODY.PEEK[] answered with ~{n}; the real bytes, NUL included, are stored, never '~{n}'."""
    server, mailbox, result, _ = _poll(fast, "literal8")
    assert (result.outcome, result.new, result.skipped) == ("ok", 3, 0), result
    _all_stored_exactly(fast, mailbox, dict(enumerate(MESSAGES, 1)))


def test_a_body_that_does_not_match_its_size_is_skipped_with_the_reason(fast):
    server, mailbox, result, _ = _poll(fast, "wrong_size")
    assert (result.outcome, result.new, result.skipped) == ("ok", 3, 1), result
    (bad,) = [r for r in rows(mailbox.id) if r.uid == BAD_UID]
    size = len(MESSAGES[BAD_UID - 1])
    assert bad.sha256 is None and bad.size == 2 * size
    assert f"announced {2 * size} bytes (RFC822.SIZE) but sent {size} bytes" in bad.skipped_reason
    assert "BINARY.PEEK[]" in bad.skipped_reason  # it was fetched again the other way first
    _all_stored_exactly(fast, mailbox, {1: MESSAGES[0], 3: MESSAGES[2]})


@pytest.mark.parametrize("mode", ["healthy", "repeat_uids", "unasked_uids"])
def test_repeated_and_unrequested_responses_store_each_message_once(fast, mode):
    server, mailbox, result, _ = _poll(fast, mode)
    assert (result.outcome, result.new, result.skipped) == ("ok", 3, 0), result
    _all_stored_exactly(fast, mailbox, dict(enumerate(MESSAGES, 1)))
    assert poll_mailbox(fast, mailbox.id).new == 0


def test_malformed_fetch_items_fail_the_folder_and_store_nothing(fast):
    server, mailbox, result, held = _poll(fast, "malformed")
    assert result.outcome == "error" and "INBOX" in result.error_text, result
    assert held < CONNECT + READ
    assert rows(mailbox.id) == []
