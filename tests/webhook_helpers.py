"""The shipped example receiver (docs/examples/webhook_receiver.py) as a process, and a blob store that pre-signs.

``SigningBlobStore`` stands in for an S3 store's pre-signed GETs: a local store
whose ``url_for`` returns an HMAC-signed, expiring URL on a loopback HTTP server
(which refuses a wrong signature or a past expiry). It exercises the
``url_for`` contract every store implements; the S3 store's own URLs are
tested where that store is.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from mailq.storage import LocalBlobStore, presign_get
from tests.helpers import wait_for
from tests.testbed.dovecot import free_port, port_open

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "webhook_receiver.py"


class SigningBlobStore(LocalBlobStore):
    def __init__(self, root, key: bytes = b"url-key"):
        super().__init__(root)
        self.key = key
        self.fetches: list[str] = []
        self.refused = 0
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                sha = url.path.rsplit("/", 1)[-1]
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                expires = int(query.get("expires", "0"))
                good = hmac.compare_digest(query.get("sig", ""), store._sig(sha, expires))
                if not good or expires < time.time():
                    store.refused += 1
                    self.send_response(403)
                    self.end_headers()
                    return
                data = store.get(sha)
                store.fetches.append(sha)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _sig(self, sha: str, expires: int) -> str:
        return hmac.new(self.key, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()

    def url_for(self, sha256: str, expires: int) -> str | None:
        until = int(time.time()) + expires
        return f"http://127.0.0.1:{self.server.server_address[1]}/blob/{sha256}?expires={until}&sig={self._sig(sha256, until)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MotoS3:
    """moto's S3 server on a free loopback port, with one bucket."""

    def __init__(self, bucket: str = "mailq-test"):
        import boto3
        from botocore.config import Config
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            config=Config(signature_version="s3v4"),
        )
        self.client.create_bucket(Bucket=bucket)

    def close(self) -> None:
        self.server.stop()


class S3MirrorStore(LocalBlobStore):
    """A local store whose blobs are also in an S3 bucket, and whose ``url_for`` pre-signs GETs there
    with ``storage.presign_get`` (the S3 store's own code path for URLs)."""

    def __init__(self, root, s3: MotoS3):
        super().__init__(root)
        self.s3 = s3
        for path in self.root.glob("*/*"):
            s3.client.put_object(Bucket=s3.bucket, Key=f"blobs/{path.name}", Body=path.read_bytes())

    def url_for(self, sha256: str, expires: int) -> str | None:
        return presign_get(self.s3.client, self.s3.bucket, f"blobs/{sha256}", expires)


class ExampleReceiver:
    """docs/examples/webhook_receiver.py running as its own process."""

    def __init__(self, out: Path, secret: str):
        self.out = out
        self.port = free_port()
        env = {"MAILQ_WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", str(self.port), "--out", str(out)], env=env)
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 15, "the example receiver to listen")
        assert self.proc.poll() is None, "the example receiver exited"
        self.url = f"http://127.0.0.1:{self.port}/mailq"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
