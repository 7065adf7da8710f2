"""Blob store: raw messages and attachments, content-addressed by sha256.

Blobs are raw mail: files are created 0600 and directories 0700 (``files``),
whatever the umask. Paths are computed from the hash only, never from anything in the mail, so a
hostile attachment name cannot reach the file system. Writes are atomic (temp
file, rename) and a second write of the same content is a no-op. Another
backend, ``storage_s3.S3BlobStore`` (``s3://BUCKET[/PREFIX]``), implements the
same interface (``BlobStore``); ``BlobBatch`` works over either.

Durability: ``put`` fsyncs the file and its directory. Ingest instead writes a
batch's blobs unsynced and flushes them once (``BlobBatch``, ``syncfs`` on
Linux) before the rows that name them commit: measured on a first sync, an
fsync per file and per directory cost ~1 ms of CPU per blob, more than parsing
the message.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from . import files
from .config import Settings
from .errors import ConfigError, StorageError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore(Protocol):
    """What every backend offers; ``tests/test_storage_contract.py`` holds each to it."""

    def put(self, data: bytes, sha256: str | None = None) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def stream(self, sha256: str, chunk_size: int = ...) -> Iterator[bytes]: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def delete_many(self, sha256s: Iterable[str]) -> int: ...
    def url_for(self, sha256: str, expires: int) -> str | None: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits (a blob name), else StorageError: nothing else reaches a path or key."""
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise StorageError(f"not a sha256 blob name: {sha256!r}")
    return sha256


def _load_syncfs():
    """libc's syncfs(2) (Linux): flushes one file system, not the whole machine like sync(2)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()
_tmp_names = itertools.count()


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class LocalBlobStore:
    """Blobs as files ``ROOT/ab/<sha256>`` on a local (or shared) file system.

    One level of 256 directories, like git's objects: a second level made almost
    every new blob create a directory in a young store, which cost more than the
    file itself (measured: a third of a first sync's CPU). ext4's hashed
    directories keep lookups fast with tens of thousands of entries each.
    """

    def __init__(self, root: str | Path, fsync: bool = True):
        self.root = Path(root).resolve()
        self.fsync = fsync
        self._dirs: set[str] = set()  # directories known to exist: saves a mkdir per blob

    def path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def _path(self, sha256: str) -> str:
        return f"{self.root}/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` under its hash; durable (file and directory fsynced) when this returns."""
        sha256 = check_sha256(sha256 or sha256_hex(data))
        if self.write_unsynced(data, sha256, fsync=self.fsync) and self.fsync:
            _fsync_dir(os.path.dirname(self._path(sha256)))
        return sha256

    def write_unsynced(self, data: bytes, sha256: str, fsync: bool = False, _retry: bool = True) -> bool:
        """Write the blob atomically (temp file, rename) unless present; True if a file was created.

        Not durable by itself: call ``flush`` (or use ``put``) before relying on it.
        """
        target = self._path(check_sha256(sha256))
        if os.path.isfile(target):
            return False
        directory = os.path.dirname(target)
        tmp = f"{directory}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(_tmp_names)}"
        try:
            if directory not in self._dirs:
                files.private_dir(directory)
                self._dirs.add(directory)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    if fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except FileNotFoundError as exc:
            if _retry and directory in self._dirs:  # removed behind our back: create it again
                self._dirs.discard(directory)
                return self.write_unsynced(data, sha256, fsync, _retry=False)
            raise StorageError(f"cannot write blob under {self.root}: {exc.strerror or exc}: check the storage path", orig=exc) from None
        except OSError as exc:
            raise StorageError(
                f"cannot write blob under {self.root}: {exc.strerror or exc}: check disk space and permissions", orig=exc
            ) from None
        return True

    def flush(self, sha256s: list[str]) -> None:
        """Make freshly written blobs durable: one ``syncfs`` of the store's file system where the
        platform has it, else an fsync per file and per directory."""
        if not self.fsync or not sha256s:
            return
        if _syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if _syncfs(fd) != 0:
                    raise StorageError(f"cannot flush blobs under {self.root}: {os.strerror(ctypes.get_errno())}: check the disk")
            finally:
                os.close(fd)
            return
        try:
            for sha256 in sha256s:
                fd = os.open(self._path(sha256), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot flush blobs under {self.root}: {exc.strerror or exc}: check the disk", orig=exc) from None
        self.sync_dirs(sha256s)

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"blob {sha256} is missing from {self.root}") from None

    def stream(self, sha256: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The blob's bytes in chunks, for blobs too large to hold in memory."""
        try:
            fh = open(self.path(sha256), "rb")
        except FileNotFoundError:
            raise StorageError(f"blob {sha256} is missing from {self.root}") from None
        with fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def delete(self, sha256: str) -> None:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            pass

    def delete_many(self, sha256s: Iterable[str]) -> int:
        count = 0
        for sha256 in sha256s:
            self.delete(sha256)
            count += 1
        return count

    def url_for(self, sha256: str, expires: int) -> str | None:
        """No URL: a file store has nothing another host can fetch (an S3 store returns a pre-signed GET)."""
        return None

    def sync_dirs(self, sha256s: list[str]) -> None:
        """fsync the directories of ``sha256s``, once each, so their renames survive a crash."""
        if not self.fsync:
            return
        for d in {os.path.dirname(self._path(s)) for s in sha256s}:
            _fsync_dir(d)


class BlobBatch:
    """Writes a batch's blobs, then waits until they are all durable at once.

    ``with BlobBatch(store) as batch: batch.put(data, sha)`` — leaving the block
    (or ``wait()``) returns once every blob is durable, so rows naming them are
    committed only after. Three kinds of store: a local store writes unsynced and
    flushes once (``write_unsynced``/``flush``); S3 starts each put on its thread
    pool (``start_put``) and ``wait`` collects every acknowledgement, within the
    store's ``deadline``; any other store just ``put``s.
    """

    def __init__(self, store: BlobStore):
        self.store = store
        self._seen: set[str] = set()
        self._unsynced: list[str] = []
        self._futures: list = []

    def put(self, data: bytes, sha256: str | None = None) -> str:
        sha256 = check_sha256(sha256 or sha256_hex(data))
        if sha256 not in self._seen:
            self._seen.add(sha256)
            start = getattr(self.store, "start_put", None)
            write = getattr(self.store, "write_unsynced", None)
            if start is not None:
                self._futures.append(start(data, sha256))
            elif write is None:
                self.store.put(data, sha256)
            elif write(data, sha256):
                self._unsynced.append(sha256)
        return sha256

    def wait(self) -> list[str]:
        """Flush or await what was written; returns every hash of the batch. Raises the first StorageError."""
        if self._futures:
            futures, self._futures = self._futures, []
            done, pending = wait_futures(futures, timeout=getattr(self.store, "deadline", None), return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is None and pending:
                for f in pending:
                    f.cancel()
                raise StorageError(
                    f"{len(pending)} blob write(s) to {self.store!r} not acknowledged within "
                    f"MAILQ_STORAGE_DEADLINE ({self.store.deadline:g}s): the storage is too slow; the poll is retried"
                )
            if failed is not None:
                for f in pending:
                    f.cancel()
                raise failed.exception()
        if self._unsynced:
            self.store.flush(self._unsynced)
            self._unsynced = []
        return sorted(self._seen)

    def __enter__(self) -> BlobBatch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.wait()


def presigned_url(store: BlobStore, sha256: str, expires: int) -> str | None:
    """A URL that fetches the blob for ``expires`` seconds without credentials, or None when the
    store cannot make one (a store without ``url_for`` counts as one that cannot)."""
    url_for = getattr(store, "url_for", None)
    return url_for(check_sha256(sha256), expires) if url_for is not None else None


def presign_get(client, bucket: str, key: str, expires: int) -> str:
    """A pre-signed S3 GET for ``key``: what an S3 store's ``url_for`` returns. Build the client with
    ``botocore.config.Config(signature_version="s3v4")``: SigV4 URLs are what every region accepts (up to 7 days)."""
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires))


_local_stores: dict[str, LocalBlobStore] = {}  # by URL; safe across fork (no sockets, only paths)


def open_store(settings: Settings) -> BlobStore:
    """The blob store named by ``MAILQ_STORAGE_URL``, kept for the process (S3: ``open_s3``'s own).

    Every poll opens it, idle ones too: a kept local store skips resolving its root
    again and remembers the directories it made (4 % of an idle poll's CPU).
    """
    url = settings.storage_url
    local = _local_stores.get(url)
    if local is not None:
        return local
    scheme = urlparse(url).scheme
    if scheme == "file":
        local = _local_stores[url] = LocalBlobStore(url[len("file://") :])
        return local
    if scheme == "s3":
        from .storage_s3 import open_s3  # needs the optional boto3 (extra "s3"), and imports this module

        return open_s3(settings)
    raise ConfigError(f"MAILQ_STORAGE_URL: unsupported scheme {scheme!r}, use file://PATH or s3://BUCKET[/PREFIX]")
