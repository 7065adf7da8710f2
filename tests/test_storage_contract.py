"""One contract for every blob store: the local file store and S3 (moto's server standing in for AWS).

Each test runs against both backends; what a backend may do differently (how
it is made durable, how it writes large blobs) is tested in its own module.
"""

from __future__ import annotations

import hashlib
import shutil
import threading

import pytest

from mailq.storage import BlobBatch, LocalBlobStore, StorageError, open_store, sha256_hex
from mailq.storage_s3 import S3BlobStore, parse_url
from tests.corpus_hostile import all_messages
from tests.s3_helpers import aws_env, s3_server, s3_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    bucket, prefix = parse_url(request.getfixturevalue("s3_url"))
    return S3BlobStore(bucket, prefix, connect_timeout=3, read_timeout=10, concurrency=8, deadline=30)


def _plant(store, sha: str, data: bytes) -> None:
    """Put ``data`` where blob ``sha`` lives, behind the store's back (a pre-existing object)."""
    if isinstance(store, LocalBlobStore):
        store.path(sha).parent.mkdir(parents=True, exist_ok=True)
        store.path(sha).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha), Body=data)


def _raw(store, sha: str) -> bytes:
    """The stored bytes as the backend holds them, not through ``get`` (which may verify)."""
    if isinstance(store, LocalBlobStore):
        return store.path(sha).read_bytes()
    return store.client.get_object(Bucket=store.bucket, Key=store.key(sha))["Body"].read()


def test_put_then_get_exists_delete(store):
    data = b"From: a@example.com\r\n\r\nhello\r\n"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.exists(sha) and store.get(sha) == data
    store.delete(sha)
    assert not store.exists(sha)
    store.delete(sha)  # deleting what is gone is fine (an interrupted removal runs again)
    with pytest.raises(StorageError, match="missing"):
        store.get(sha)


def test_writes_are_create_only(store):
    """A blob that exists is never rewritten: same hash, same bytes, so a second write has nothing to add."""
    data = b"the real bytes"
    sha = sha256_hex(data)
    _plant(store, sha, b"planted earlier")
    assert store.put(data) == sha
    with BlobBatch(store) as batch:
        batch.put(data, sha)
    assert _raw(store, sha) == b"planted earlier"


def test_names_that_are_not_a_sha256_are_refused(store):
    for name in ("../../etc/passwd", "AB" * 32, "ab/cd", "", "0" * 63):
        with pytest.raises(StorageError, match="not a sha256"):
            store.get(name)
        if name:  # an empty name means "hash it for me"
            with pytest.raises(StorageError, match="not a sha256"):
                store.put(b"x", name)


def test_stream_returns_the_bytes_in_bounded_chunks(store):
    data = bytes(range(256)) * 12_000  # ~3 MB
    sha = store.put(data)
    chunks = list(store.stream(sha, chunk_size=256 * 1024))
    assert b"".join(chunks) == data
    assert len(chunks) > 1 and max(map(len, chunks)) <= 256 * 1024


def test_batch_waits_for_every_blob_and_names_each_once(store):
    blobs = [f"message {i}\r\n".encode() * (i + 1) for i in range(40)]
    batch = BlobBatch(store)
    for data in blobs + blobs[:5]:  # repeats in a batch are written once
        batch.put(data)
    names = batch.wait()
    assert names == sorted({sha256_hex(d) for d in blobs})
    assert all(store.get(sha256_hex(d)) == d for d in blobs)


def test_delete_many_removes_exactly_those(store):
    keep, gone = [store.put(f"keep {i}".encode()) for i in range(3)], [store.put(f"gone {i}".encode()) for i in range(7)]
    assert store.delete_many(gone + ["f" * 64]) == 8  # one never stored: fine
    assert [store.exists(s) for s in gone] == [False] * 7
    assert [store.exists(s) for s in keep] == [True] * 3


def test_concurrent_writers_of_one_blob_all_succeed(store):
    data = b"same content from eight polls at once" * 100
    errors: list[BaseException] = []

    def write():
        try:
            store.put(data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and store.get(sha256_hex(data)) == data


def test_hostile_corpus_is_stored_byte_identical(store):
    messages = all_messages()
    assert len(messages) > 20
    with BlobBatch(store) as batch:
        names = {name: batch.put(raw) for name, raw in messages}
    for name, raw in messages:
        assert store.get(names[name]) == raw, name


def test_open_store_keeps_one_local_store_per_process_that_remakes_a_removed_directory(settings, tmp_path):
    s = settings.replace(storage_url=f"file://{tmp_path / 'blobs'}")
    store = open_store(s)
    assert isinstance(store, LocalBlobStore) and open_store(s) is store
    assert open_store(s.replace(storage_url=f"file://{tmp_path / 'other'}")) is not store
    first = store.put(b"first blob")
    shutil.rmtree(tmp_path / "blobs" / first[:2])  # behind the kept store's back
    assert store.put(b"first blob") == first and store.get(first) == b"first blob"
