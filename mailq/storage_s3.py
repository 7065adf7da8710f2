"""Blob store on S3 or an S3-compatible server: ``MAILQ_STORAGE_URL=s3://BUCKET[/PREFIX]``.

Layout: one object per blob, key ``PREFIX/ab/<sha256>`` (``ab`` = the hash's first
two hex digits, as on disk), body = the exact bytes. Nothing else is stored, so
a bucket can be listed, copied or audited with any S3 tool.

Credentials, region and endpoint come only from boto3's standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and
``~/.aws/config``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
instance roles): mailq never reads, stores or prints them, and its error
messages are written here rather than copied from the server (which may echo
the access key id).

Writes are create-only: ``PutObject`` with ``If-None-Match: *`` (a second
writer of the same content gets 412 and nothing is overwritten); a server that
does not implement it (501) gets a HEAD existence check before each put instead.
Blobs above ``MULTIPART_THRESHOLD`` go up in parts, the completion again
conditional. Reads stream and verify the sha256. Deletes are batched
(``DeleteObjects``, 1,000 keys a request). ``start_put`` runs puts on a bounded
thread pool so a batch's S3 round trips overlap; ``BlobBatch`` waits for all of
them (with ``MAILQ_STORAGE_DEADLINE``) before the batch's rows commit.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlparse

from .config import Settings
from .errors import ConfigError, StorageError
from .storage import check_sha256, presign_get, sha256_hex

MULTIPART_THRESHOLD = 16 * 1024 * 1024
"""Blobs larger than this are uploaded in parts (S3 allows 5 GiB in one PutObject, but a part retries alone)."""

PART_SIZE = 8 * 1024 * 1024
"""Bytes per multipart part (S3's minimum is 5 MiB except for the last part)."""

READ_CHUNK = 1024 * 1024

_DELETE_BATCH = 1000  # S3's limit per DeleteObjects request

_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled"}


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``); the prefix may be empty."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"MAILQ_STORAGE_URL: expected s3://BUCKET[/PREFIX], got {url!r}")
    if parsed.username or parsed.password or parsed.query:
        raise ConfigError(
            "MAILQ_STORAGE_URL: put no credentials or options in the s3:// URL; "
            "use the standard AWS settings (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...)"
        )
    return parsed.netloc, parsed.path.strip("/")


class S3BlobStore:
    """Content-addressed blobs in one bucket under an optional prefix; thread-safe."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        concurrency: int = 16,
        deadline: float = 120.0,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("MAILQ_STORAGE_URL=s3://... needs boto3: pip install 'mailq[s3]' (or pip install boto3)") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.deadline = deadline
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=max(concurrency, 2) + 2,
            signature_version="s3v4",  # pre-signed URLs (url_for) in SigV4, which every region accepts
        )
        self.client = boto3.session.Session().client("s3", config=config)
        self.endpoint = self.client.meta.endpoint_url
        self._conditional = True  # False once the server answered 501 to If-None-Match
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="mailq-s3")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore({self.where})"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, sha256: str) -> str:
        sha256 = check_sha256(sha256)
        name = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- the store interface ------------------------------------------------

    def exists(self, sha256: str) -> bool:
        key = self.key(sha256)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if _status(exc) == 404 and _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, "check", key) from None

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` under its hash; acknowledged by S3 (durable) when this returns."""
        sha256 = check_sha256(sha256 or sha256_hex(data))
        self.create(data, sha256)
        return sha256

    def start_put(self, data: bytes, sha256: str) -> Future:
        """Begin ``create`` on the store's thread pool; the future's result is True if the object was created."""
        return self._pool.submit(self.create, data, sha256)

    def create(self, data: bytes, sha256: str) -> bool:
        """Write the object unless it exists; True if this call created it."""
        key = self.key(sha256)
        if len(data) > self.multipart_threshold:
            if self.exists(sha256):  # a HEAD costs far less than re-sending megabytes
                return False
            return self._multipart(key, data)
        if not self._conditional and self.exists(sha256):
            return False
        try:
            extra = {"IfNoneMatch": "*"} if self._conditional else {}
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
            return True
        except Exception as exc:
            return self._create_refused(exc, data, sha256, key)

    def _create_refused(self, exc: BaseException, data: bytes, sha256: str, key: str) -> bool:
        status = _status(exc)
        if status == 412:  # If-None-Match: the object is there already; same hash, same bytes
            return False
        if status == 409:  # a concurrent conditional write of the same key: whoever wins wrote these bytes
            if self.exists(sha256):
                return False
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except Exception as again:
                if _status(again) == 412:
                    return False
                raise self._error(again, "write", key) from None
        if status == 501 and self._conditional:  # no conditional writes on this server: HEAD, then put
            with self._lock:
                self._conditional = False
            return self.create(data, sha256)
        raise self._error(exc, "write", key) from None

    def _multipart(self, key: str, data: bytes) -> bool:
        upload_id = None
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            parts = []
            for number, start in enumerate(range(0, len(data), self.part_size), 1):
                body = data[start : start + self.part_size]
                etag = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            extra = {"IfNoneMatch": "*"} if self._conditional else {}
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **extra
            )
            return True
        except Exception as exc:
            if upload_id is not None:
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                except Exception:
                    pass  # a bucket lifecycle rule should expire abandoned uploads (docs/deploy.md)
            if _status(exc) == 412:
                return False
            raise self._error(exc, "write", key) from None

    def stream(self, sha256: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """The blob's bytes in chunks, never all in memory; raises StorageError if they do not hash to ``sha256``."""
        key = self.key(sha256)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        digest = hashlib.sha256()
        try:
            for chunk in body.iter_chunks(chunk_size):
                digest.update(chunk)
                yield chunk
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        finally:
            body.close()
        if digest.hexdigest() != sha256:
            raise StorageError(f"blob {sha256} in {self.where} is corrupt (its bytes hash differently): restore it from a backup")

    def get(self, sha256: str) -> bytes:
        return b"".join(self.stream(sha256))

    def delete(self, sha256: str) -> None:
        self.delete_many([sha256])

    def url_for(self, sha256: str, expires: int) -> str | None:
        """A pre-signed GET valid ``expires`` seconds: a webhook receiver fetches the blob without credentials."""

        return presign_get(self.client, self.bucket, self.key(sha256), expires)

    def delete_many(self, sha256s: Iterable[str]) -> int:
        """Delete blobs (missing ones are fine), up to 1,000 per request; returns how many were asked for."""
        keys = [self.key(s) for s in sha256s]
        for i in range(0, len(keys), _DELETE_BATCH):
            chunk = keys[i : i + _DELETE_BATCH]
            try:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            except Exception as exc:
                raise self._error(exc, "delete", chunk[0]) from None
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise StorageError(
                    f"S3 refused to delete {len(failed)} blob(s) in {self.where} ({first.get('Code')}): "
                    "check the credentials' s3:DeleteObject permission, then remove the mailbox again"
                )
        return len(keys)

    def check(self) -> None:
        """One cheap request proving bucket, credentials and endpoint work (``mailq`` start-up checks, tests)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._error(exc, "reach", self.prefix or "/") from None

    # -- errors ---------------------------------------------------------------

    def _error(self, exc: BaseException, action: str, key: str) -> StorageError:
        """A StorageError saying what happened and what to do; never the server's text (it may echo a key id)."""
        from botocore import exceptions as bx

        where, at = self.where, self.endpoint
        code, status = _code(exc), _status(exc)
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            text = (
                f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, or give the host an instance role"
            )
        elif isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
            text = f"S3 at {at} is too slow: no answer within the timeout to {action} {key}; polls retry, check the endpoint's health"
        elif isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.ConnectionError):
            text = f"cannot reach S3 at {at} to {action} {key}: check AWS_ENDPOINT_URL_S3 / the network; polls retry"
        elif code == "NoSuchBucket" or (action == "reach" and status == 404):
            text = f"S3 bucket {self.bucket!r} does not exist at {at}: create it, or fix MAILQ_STORAGE_URL"
        elif code in _ACCESS_CODES or status == 403:
            text = (
                f"S3 at {at} refused access to {where} ({code or status}): check the AWS credentials "
                "(AWS_ACCESS_KEY_ID / AWS_PROFILE) and that they may read, write and delete in the bucket"
            )
        elif code == "NoSuchKey" or status == 404:
            text = f"blob {key.rsplit('/', 1)[-1]} is missing from {where}"
        elif code:
            text = f"S3 at {at} answered {code} (HTTP {status}) to {action} {key}: retried at the next poll; check the server"
        else:
            text = f"S3 {action} of {key} in {where} failed: {type(exc).__name__}; check the endpoint {at}"
        return StorageError(text, orig=exc)


def _code(exc: BaseException) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "") or "")


def _status(exc: BaseException) -> int | None:
    return (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


_stores: dict[tuple, S3BlobStore] = {}
_stores_lock = threading.Lock()


def open_s3(settings: Settings) -> S3BlobStore:
    """One store (client + pool) per process and settings: building a boto3 client cost ~100 ms of CPU
    (measured), ten times an idle poll."""
    bucket, prefix = parse_url(settings.storage_url)
    aws_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))  # kept in memory only
    ident = (
        os.getpid(),
        bucket,
        prefix,
        settings.connect_timeout,
        settings.read_timeout,
        settings.storage_concurrency,
        settings.storage_deadline,
        aws_env,
    )
    with _stores_lock:
        store = _stores.get(ident)
        if store is None:
            store = _stores[ident] = S3BlobStore(
                bucket,
                prefix,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                concurrency=settings.storage_concurrency,
                deadline=settings.storage_deadline,
            )
    return store
