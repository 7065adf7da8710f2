"""A complete mailq webhook receiver (payload v2): verify, fetch, build a ticket. Standard library only.

    MAILQ_WEBHOOK_SECRET=... python webhook_receiver.py --port 8000 --out tickets/

Each POST is checked against ``X-Mailq-Signature`` (HMAC-SHA256 of the exact
body) before anything else; a bad signature gets 401 and is not parsed. A
ticket is written as ``OUT/<message id>.json`` (atomically, so a redelivery
after a crash overwrites it with the same content). Attachments with a
pre-signed ``url`` (S3 stores) are downloaded into ``OUT/<message id>/`` under
their sha256, never under the sender's file name, and checked against it.
mailq retries any answer other than 2xx, so answer 2xx only once the ticket is saved.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import os
import urllib.request
from pathlib import Path

SECRET = os.environ.get("MAILQ_WEBHOOK_SECRET", "").encode()


def verified(body: bytes, signature: str) -> bool:
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return bool(SECRET) and hmac.compare_digest(signature, expected)


def fetch(url: str, sha256: str, target: Path) -> bool:
    """Download a pre-signed URL and keep it only if it matches the sha256 mailq announced."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        return False
    target.write_bytes(data)
    return True


def ticket(event: dict, out: Path) -> dict:
    message = event["message"]
    folder = out / str(message["id"])
    attachments = []
    for att in message.get("attachments", []):
        fetched = False
        if att.get("url"):
            folder.mkdir(parents=True, exist_ok=True)
            fetched = fetch(att["url"], att["sha256"], folder / att["sha256"])
        attachments.append({"filename": att["filename"], "content_type": att["content_type"], "size": att["size"], "fetched": fetched})
    raw_fetched = False
    if message.get("raw_url"):
        folder.mkdir(parents=True, exist_ok=True)
        raw_fetched = fetch(message["raw_url"], message["sha256"], folder / "message.eml")
    text = message.get("text") or {}
    return {
        "mailq_id": message["id"],
        "mailbox": message["mailbox"],
        "from": message["from"],
        "subject": message["subject"],
        "body": text.get("content"),
        "body_truncated": text.get("truncated", False),
        "has_html": message.get("html") is not None,
        "attachments": attachments,
        "raw_fetched": raw_fetched,
    }


class Handler(http.server.BaseHTTPRequestHandler):
    out: Path

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verified(body, self.headers.get("X-Mailq-Signature", "")):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if event.get("event") == "message.new":
            data = ticket(event, self.out)
            target = self.out / f"{data['mailq_id']}.json"
            tmp = target.with_suffix(".part")
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2))
            os.replace(tmp, target)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=Path("tickets"))
    args = parser.parse_args()
    if not SECRET:
        parser.error("set MAILQ_WEBHOOK_SECRET to the value mailq signs with")
    args.out.mkdir(parents=True, exist_ok=True)
    Handler.out = args.out
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
