"""The S3 store's own behaviour against a real S3 API server (moto's, standing in for AWS):
errors an operator can act on, multipart, deadlines, and ingest that loses nothing when S3 fails."""

from __future__ import annotations

import hashlib
import time

import pytest

from mailq import removal
from mailq.errors import ConfigError, StorageError
from mailq.models import Mailbox, PollRun
from mailq.poll import poll_mailbox
from mailq.storage import BlobBatch, open_store, sha256_hex
from mailq.storage_s3 import S3BlobStore, parse_url
from tests.helpers import wait_for
from tests.imap_helpers import add_mailbox, closed_port, rows, server_view
from tests.s3_helpers import aws_env, s3_server, s3_settings, s3_url  # noqa: F401  (fixtures)
from tests.testbed.mailgen import make_messages


def _store(url: str, **kw) -> S3BlobStore:
    bucket, prefix = parse_url(url)
    kw = {"connect_timeout": 2, "read_timeout": 5, "concurrency": 4, "deadline": 20, **kw}
    return S3BlobStore(bucket, prefix, **kw)


def _answers(store: S3BlobStore) -> bool:
    try:
        store.check()
        return True
    except StorageError:
        return False


def test_keys_are_prefix_ab_sha256_and_the_url_carries_no_secrets(s3_server, s3_url):
    store = _store(s3_url)
    sha = store.put(b"layout")
    prefix = parse_url(s3_url)[1]
    assert s3_server.keys(prefix) == [f"{prefix}/{sha[:2]}/{sha}"]
    assert _store(s3_server.url()).key(sha) == f"{sha[:2]}/{sha}"
    for bad in ("s3://AKIA:secret@bucket/p", "s3://bucket/p?region=x", "s3:///p"):
        with pytest.raises(ConfigError, match="MAILQ_STORAGE_URL"):
            parse_url(bad)


def test_open_store_reuses_one_client_per_process(settings, s3_url):
    s = s3_settings(settings, s3_url)
    first = open_store(s)
    assert isinstance(first, S3BlobStore) and open_store(s) is first


def test_large_blobs_go_up_in_parts_and_stay_create_only(s3_server, s3_url):
    store = _store(s3_url, multipart_threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024)
    data = hashlib.sha256(b"seed").digest() * (11 * 1024 * 1024 // 32)  # 11 MiB: three parts
    sha = store.put(data)
    head = s3_server.client().head_object(Bucket=store.bucket, Key=store.key(sha))
    assert head["ETag"].strip('"').endswith("-3")  # S3's multipart ETag: md5-of-md5s, dash, part count
    assert b"".join(store.stream(sha)) == data
    assert store.create(data, sha) is False  # there already: not uploaded again


def test_wrong_credentials_give_a_clear_error_without_any_secret(s3_server, s3_url, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-123")
    with pytest.raises(StorageError) as info:
        _store(s3_url).put(b"x")
    text = str(info.value)
    assert "refused access" in text and "AWS_ACCESS_KEY_ID" in text
    assert s3_server.access_key not in text and "not-the-secret-123" not in text
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    with pytest.raises(StorageError, match="refused access") as info:
        _store(s3_url).get("a" * 64)
    assert "AKIAUNKNOWNKEY000000" not in str(info.value)


def test_no_credentials_at_all(s3_url, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no AWS credentials .*AWS_ACCESS_KEY_ID"):
        _store(s3_url).put(b"x")


def test_missing_bucket_says_create_it(s3_server, aws_env):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist.*create it"):
        _store("s3://no-such-bucket/p").put(b"x")
    with pytest.raises(StorageError, match="does not exist"):
        _store("s3://no-such-bucket").check()


def test_unreachable_endpoint(s3_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach S3 at http://127.0.0.1:.*AWS_ENDPOINT_URL_S3"):
        _store(s3_url).put(b"x")
    assert time.monotonic() - started < 10


def test_a_hung_server_hits_the_timeouts_and_the_batch_deadline(s3_server, s3_url):
    store = _store(s3_url, connect_timeout=1, read_timeout=1, deadline=2)
    store.check()  # connections are up before the server hangs
    s3_server.pause()
    try:
        started = time.monotonic()
        batch = BlobBatch(store)
        for i in range(6):
            batch.put(f"blob {i}".encode())
        with pytest.raises(StorageError, match="not acknowledged within MAILQ_STORAGE_DEADLINE|too slow"):
            batch.wait()
        assert time.monotonic() - started < 4  # the total deadline, not 6 puts x 3 attempts x timeouts
        with pytest.raises(StorageError, match="too slow"):
            store.get(sha256_hex(b"blob 0"))
        assert time.monotonic() - started < 15  # read timeout x 3 attempts, bounded
    finally:
        s3_server.resume()
    wait_for(lambda: _answers(store), 20, "S3 answering again")


def test_ingest_to_s3_survives_s3_going_down_mid_poll_then_removal_deletes_the_blobs(settings, dovecot, mail_user, s3_server, s3_url):
    """S3 hangs after the second batch commits: the poll fails cleanly, rows never point at missing blobs,
    the retry stores the rest; 0 lost, 0 duplicated. Then removing the mailbox empties its prefix."""
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(30, seed=15, max_bytes=60_000))
    s = s3_settings(settings, s3_url, fetch_batch=5, read_timeout=1.0, connect_timeout=1.0, storage_deadline=2.0)
    mailbox = add_mailbox(s, user, pw, port=dovecot.imap_port)
    batches = []

    def on_batch(ids):
        batches.append(len(ids))
        if len(batches) == 2:
            s3_server.pause()

    try:
        first = poll_mailbox(s, mailbox.id, on_batch=on_batch)
    finally:
        s3_server.resume()
    assert first.outcome == "error" and first.error_class == "storage", first
    assert "S3" in first.error_text and s3_server.secret_key not in first.error_text
    committed = len(rows(mailbox.id))
    # What committed before the outage, and only that: batch 3's blob writes start while batch 2 commits
    # (the pipeline), so they may or may not have been acknowledged before the pause; batch 4's never are.
    assert sum(batches) == committed and committed in (10, 15), (batches, committed)
    store = open_store(s)
    assert all(store.get(r.sha256) for r in rows(mailbox.id))  # every committed row's blob is there
    assert Mailbox.get_by_id(mailbox.id).state == "failing"

    wait_for(lambda: _answers(store), 20, "S3 answering again after the outage")
    second = poll_mailbox(s, mailbox.id, force=True)  # the retry (forced: no waiting out the backoff here)
    assert (second.outcome, second.new) == ("ok", 30 - committed), second
    server = server_view(dovecot, user, pw)
    stored = {r.uid: store.get(r.sha256) for r in rows(mailbox.id)}
    assert stored == {uid: raw for uid, (raw, _) in server.items()}  # 0 lost, 0 duplicated, byte-identical
    prefix = parse_url(s3_url)[1]
    assert len(s3_server.keys(prefix)) >= 30

    counts = removal.remove_mailbox(s, Mailbox.get_by_id(mailbox.id))
    assert counts["messages"] == 30 and counts["blobs"] >= 30
    assert s3_server.keys(prefix) == []


def test_a_poll_with_wrong_s3_credentials_fails_clearly_and_records_no_secret(settings, dovecot, mail_user, s3_server, s3_url, monkeypatch):
    user, pw = mail_user
    dovecot.deliver_many((user, raw) for raw in make_messages(3, seed=3))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-42")
    s = s3_settings(settings, s3_url)
    mailbox = add_mailbox(s, user, pw, port=dovecot.imap_port)
    result = poll_mailbox(s, mailbox.id)
    assert (result.outcome, result.error_class, result.new) == ("error", "storage", 0)
    assert "refused access" in result.error_text and "AWS_ACCESS_KEY_ID" in result.error_text
    row = Mailbox.get_by_id(mailbox.id)
    recorded = " ".join([result.error_text, row.last_error or "", *(r.error_text or "" for r in PollRun.select())])
    for secret in ("wrong-secret-value-42", s3_server.access_key, s3_server.secret_key):
        assert secret not in recorded
    assert rows(mailbox.id) == [] and row.state == "failing"  # nothing committed without its blobs
