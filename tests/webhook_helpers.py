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

from mailq.storage import LocalBlobStore
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


class PlainMotoS3:
    """moto's S3 server without credential checks: the session's server (tests/s3_helpers.py) checks
    credentials, and moto's checker fails on pre-signed (query-signed) GETs with a 500 (KeyError
    HTTP_AUTHORIZATION in moto 5.2), so pre-signed URLs are fetched from this one."""

    def __init__(self, monkeypatch, bucket: str = "mailq-urls"):
        import boto3
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        boto3.client("s3").create_bucket(Bucket=bucket)
        self.url = f"s3://{bucket}/blobs"

    def close(self) -> None:
        self.server.stop()


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
