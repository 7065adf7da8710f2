"""The private Dovecot and redis-server used by every other test, against the real binaries."""

from __future__ import annotations

import csv
import random
import socket
import ssl
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.helpers import wait_for
from tests.testbed import Dovecot, RedisServer, make_message, make_messages
from tests.testbed.cli import main as cli_main


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    server.add_users({"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol", "dave": "old-pw"})
    server.start()
    yield server
    server.stop()


def imap(server: Dovecot, user: str, password: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", server.imap_port, ssl=False, timeout=10)
    client.login(user, password)
    return client


def test_delivered_messages_are_visible_byte_for_byte(dovecot):
    raws = make_messages(5, seed=7, max_bytes=300_000)
    assert dovecot.deliver_many(("alice", raw) for raw in raws) == 5
    with imap(dovecot, "alice", "pw-alice") as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(), ["BODY.PEEK[]"])
        bodies = [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]
    assert sorted(bodies) == sorted(raws)
    assert dovecot.message_count("alice") == 5


def test_append_imap_returns_the_uid(dovecot):
    raw = make_message(random.Random(1), 0, "small")
    uid = dovecot.append_imap("carol", "pw-carol", raw)
    with imap(dovecot, "carol", "pw-carol") as client:
        client.select_folder("INBOX", readonly=True)
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == raw


def test_folders_and_delivery_into_them(dovecot):
    dovecot.create_folder("bob", "Archive")
    dovecot.deliver("bob", b"Subject: old\r\n\r\narchived\r\n", folder="Archive")
    with imap(dovecot, "bob", "pw-bob") as client:
        assert "Archive" in [name for _, _, name in client.list_folders()]
        assert client.select_folder("Archive", readonly=True)[b"EXISTS"] == 1


def test_reset_uidvalidity_changes_what_examine_reports(dovecot):
    dovecot.deliver("bob", b"Subject: x\r\n\r\nx\r\n")
    with imap(dovecot, "bob", "pw-bob") as client:
        before = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    new = dovecot.reset_uidvalidity("bob")
    assert new != before
    with imap(dovecot, "bob", "pw-bob") as client:
        assert client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"] == new


def test_renumber_uids_gives_a_new_uidvalidity_and_uids_from_one(dovecot):
    dovecot.create_folder("bob", "Renumber")
    dovecot.deliver_many([("bob", b"Subject: a\r\n\r\na\r\n")] * 3, folder="Renumber")
    dovecot.append_imap("bob", "pw-bob", b"Subject: b\r\n\r\nb\r\n", folder="Renumber")
    with imap(dovecot, "bob", "pw-bob") as client:
        before = client.select_folder("Renumber", readonly=True)
    dovecot.renumber_uids("bob", "Renumber")
    with imap(dovecot, "bob", "pw-bob") as client:
        after = client.select_folder("Renumber", readonly=True)
        assert after[b"UIDVALIDITY"] != before[b"UIDVALIDITY"]
        assert sorted(client.search()) == [1, 2, 3, 4]


def test_login_attempts_counts_failed_and_good_logins(dovecot):
    start = dovecot.login_attempts("carol")
    with pytest.raises(LoginError):
        imap(dovecot, "carol", "wrong")
    imap(dovecot, "carol", "pw-carol").logout()
    wait_for(lambda: dovecot.login_attempts("carol") == start + 2)


def test_set_password_takes_effect(dovecot):
    imap(dovecot, "dave", "old-pw").logout()
    dovecot.set_password("dave", "new-pw")  # same length, same second: must still be seen
    imap(dovecot, "dave", "new-pw").logout()
    with pytest.raises(LoginError):
        imap(dovecot, "dave", "old-pw")


def test_imaps_port_verifies_with_the_generated_certificate(dovecot):
    context = ssl.create_default_context(cafile=str(dovecot.cert_path))
    with IMAPClient("127.0.0.1", dovecot.imaps_port, ssl=True, ssl_context=context, timeout=10) as client:
        client.login("alice", "pw-alice")
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] >= 1
    with socket.create_connection(("localhost", dovecot.imaps_port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() is not None


def test_a_second_instance_runs_alongside_and_stop_is_idempotent(tmp_path, dovecot):
    other = Dovecot(tmp_path / "other")
    other.add_user("zed", "pw")
    other.start()
    other.start()  # already running: no-op
    assert other.running() and other.imap_port not in (dovecot.imap_port, dovecot.imaps_port)
    imap(other, "zed", "pw").logout()
    other.stop()
    other.stop()
    assert not other.running()
    assert dovecot.running()


def test_stop_works_when_the_config_was_deleted(tmp_path):
    server = Dovecot(tmp_path / "gone")
    server.start()
    server.conf_path.unlink()
    server.stop()
    assert not server.running()


def test_bulk_users_are_fast(tmp_path):
    server = Dovecot(tmp_path / "bulk")
    began = time.monotonic()
    server.add_users({f"user{i:04d}": f"pw-user{i:04d}" for i in range(1000)})
    assert time.monotonic() - began < 5.0  # ~0.15 s idle; 2 s seen under disk load
    assert len(server.users()) == 1000


def test_mailgen_is_deterministic_and_varied():
    # Its speed is a benchmark figure (scripts/bench's set-up time), not a timed assertion.
    messages = make_messages(2000, seed=3)
    assert messages[:50] == make_messages(50, seed=3)
    sizes = sorted(len(m) for m in messages)
    assert 2_000 <= sizes[len(sizes) // 2] <= 50_000
    assert sizes[-1] > 100_000
    ids = {m.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in messages}
    assert len(ids) == 2000
    assert any(b"=?utf-8?b?" in m.split(b"\r\n\r\n", 1)[0] for m in messages)
    assert any(b"multipart/alternative" in m for m in messages)


def test_cli_start_is_idempotent_and_writes_the_accounts_csv(tmp_path):
    root = tmp_path / "tb"
    args = ["--root", str(root), "--mailboxes", "3", "--messages", "4", "--seed", "1"]
    try:
        assert cli_main(["start", *args]) == 0
        assert cli_main(["start", *args]) == 0
        rows = list(csv.DictReader(open(root / "mailboxes.csv")))
        assert [r["username"] for r in rows] == ["user0001", "user0002", "user0003"]
        assert (root / "mailboxes.csv").stat().st_mode & 0o777 == 0o600  # it holds the passwords
        row = rows[1]
        assert (row["host"], row["security"], row["password"], row["folders"]) == ("127.0.0.1", "plain", "pw-user0002", "INBOX")
        server = Dovecot(root, int(row["port"]))
        assert server.message_count("user0002") == 4
        assert cli_main(["status", "--root", str(root)]) == 0
    finally:
        assert cli_main(["stop", "--root", str(root)]) == 0
    assert cli_main(["status", "--root", str(root)]) == 3


def test_redis_server_answers_and_restarts_on_the_same_port(tmp_path):
    import redis

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("k", "v")
        port = server.port
        server.restart()
        assert server.port == port and server.running()
        assert redis.Redis.from_url(server.url).get("k") is None  # no persistence
    finally:
        server.stop()
    assert not server.running()


def test_the_testbed_names_a_missing_imap_server_binary(monkeypatch, tmp_path):
    """dovecot-core alone has dovecot and doveadm: the check must look for the IMAP binary itself."""
    from tests.testbed import dovecot as testbed_dovecot

    monkeypatch.setattr(testbed_dovecot, "IMAP_BINARIES", (str(tmp_path / "no-imap"),))
    assert testbed_dovecot.missing_tools() == [f"Dovecot's IMAP server ({tmp_path / 'no-imap'})"]
    with pytest.raises(testbed_dovecot.DovecotError, match="IMAP server .* not found: apt-get install -y dovecot-imapd"):
        testbed_dovecot.Dovecot(tmp_path / "tb").start()
