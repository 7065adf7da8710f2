"""Blob store: raw messages and attachments, content-addressed by sha256.

Paths are computed from the hash only, never from anything in the mail, so a
hostile attachment name cannot reach the file system. Writes are atomic (temp
file, fsync, rename) and a second write of the same content is a no-op.
Another backend (S3-compatible) implements the same four methods.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from .config import Settings
from .errors import ConfigError, MailqError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class StorageError(MailqError):
    """Raised when a blob cannot be written or read (disk full, permissions, missing blob)."""


class BlobStore(Protocol):
    def put(self, data: bytes, sha256: str | None = None) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(sha256: str) -> str:
    if not _HEX64.match(sha256):
        raise StorageError(f"not a sha256 blob name: {sha256!r}")
    return sha256


class LocalBlobStore:
    """Blobs as files ``ROOT/ab/cd/<sha256>`` on a local (or shared) file system."""

    def __init__(self, root: str | Path, fsync: bool = True):
        self.root = Path(root).resolve()
        self.fsync = fsync

    def path(self, sha256: str) -> Path:
        sha256 = _check(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes, sha256: str | None = None) -> str:
        sha256 = sha256 or sha256_hex(data)
        target = self.path(sha256)
        if target.is_file():
            return sha256
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write blob under {self.root}: {exc.strerror or exc}: check disk space and permissions", orig=exc) from None
        return sha256

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"blob {sha256} is missing from {self.root}") from None

    def delete(self, sha256: str) -> None:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            pass

    def sync_dirs(self, sha256s: list[str]) -> None:
        """fsync the directories of freshly renamed blobs, once each, so the renames survive a crash."""
        if not self.fsync:
            return
        for d in {self.path(s).parent for s in sha256s}:
            try:
                fd = os.open(d, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass


def open_store(settings: Settings) -> BlobStore:
    """The blob store named by ``MAILQ_STORAGE_URL``."""
    url = settings.storage_url
    scheme = urlparse(url).scheme
    if scheme == "file":
        return LocalBlobStore(url[len("file://"):])
    if scheme == "s3":
        raise ConfigError("MAILQ_STORAGE_URL: the s3:// backend is not available in this release, use file://PATH")
    raise ConfigError(f"MAILQ_STORAGE_URL: unsupported scheme {scheme!r}, use file://PATH")
