"""Webhook payload v2: bodies, attachments, pre-signed URLs; signed; consumed by the shipped example receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pytest

from mailq import api, delivery
from mailq.errors import DispatchError
from mailq.models import Message
from mailq.payload import payload_v2
from mailq.poll import poll_mailbox
from mailq.storage import open_store

from .imap_helpers import add_mailbox
from .s3_helpers import s3_settings
from .test_messages_out import MULTIPART
from .webhook_helpers import ExampleReceiver, PlainMotoS3, SigningBlobStore

SECRET = "v2-secret"


@pytest.fixture
def stored(settings, dovecot, mail_user):
    """One multipart message (text, HTML, a PDF) polled from Dovecot; returns its row."""
    user, pw = mail_user
    dovecot.deliver_many([(user, MULTIPART)])
    mailbox = add_mailbox(settings, user, pw, port=dovecot.imap_port)
    poll_mailbox(settings, mailbox.id)
    return Message.get(Message.mailbox == mailbox.id)


@pytest.fixture
def receiver(tmp_path):
    r = ExampleReceiver(tmp_path / "tickets", SECRET)
    yield r
    r.close()


@pytest.fixture
def signing_store(settings):
    store = SigningBlobStore(open_store(settings).root)
    api._stores[settings.storage_url] = store
    yield store
    api._stores.pop(settings.storage_url, None)
    store.close()


def test_the_v2_payload_carries_bodies_and_attachments_and_no_urls_from_a_file_store(settings, stored):
    data = payload_v2(settings, open_store(settings), Message.get_by_id(stored.id), "box")
    m = data["message"]
    assert data["version"] == 2 and data["event"] == "message.new"
    assert m["text"] == {"content": "Hello text é", "truncated": False}
    assert m["html"] == {"content": "<p>Hello <b>html</b></p>", "truncated": False}
    assert m["attachments"] == [
        {
            "id": m["attachments"][0]["id"],
            "filename": "../../r.pdf",
            "content_type": "application/pdf",
            "size": 9,
            "sha256": hashlib.sha256(b"%PDF-1.4\n").hexdigest(),
            "url": None,
        }
    ]
    assert m["raw_url"] is None and m["urls_expire_at"] is None
    assert {"id", "mailbox", "folder", "uid", "uidvalidity", "message_id", "subject", "from", "sha256", "size"} <= set(m)
    short = payload_v2(settings.replace(webhook_body_chars=5), open_store(settings), stored, "box")["message"]
    assert short["text"] == {"content": "Hello", "truncated": True} and short["html"]["truncated"] is True


def test_the_example_receiver_verifies_the_signature_and_fetches_the_presigned_urls(settings, stored, receiver, signing_store):
    settings = settings.replace(webhook_url=receiver.url, webhook_secret=SECRET, webhook_url_expiry=120)
    assert delivery.deliver(settings, [stored.id])["delivered"] == 1
    ticket = json.loads((receiver.out / f"{stored.id}.json").read_text())
    assert ticket["subject"] == "parts" and ticket["body"] == "Hello text é" and ticket["has_html"] is True
    assert ticket["raw_fetched"] is True
    assert ticket["attachments"] == [{"filename": "../../r.pdf", "content_type": "application/pdf", "size": 9, "fetched": True}]
    folder = receiver.out / str(stored.id)
    assert (folder / "message.eml").read_bytes() == api.raw(stored.id)
    assert sorted(signing_store.fetches) == sorted([stored.sha256, hashlib.sha256(b"%PDF-1.4\n").hexdigest()])
    assert not (receiver.out.parent / "r.pdf").exists()

    data = payload_v2(settings, signing_store, stored, "box")["message"]
    expires = datetime.fromisoformat(data["urls_expire_at"].rstrip("Z"))
    assert timedelta(seconds=100) < expires - datetime.utcnow() <= timedelta(seconds=121)
    tampered = data["raw_url"].replace("sig=", "sig=0")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(tampered, timeout=10)
    assert signing_store.refused == 1


@pytest.fixture
def plain_s3(monkeypatch):
    server = PlainMotoS3(monkeypatch)
    yield server
    api._stores.pop(server.url, None)  # the cached store points at this server's endpoint
    server.close()


def test_with_the_s3_store_the_receiver_fetches_the_presigned_urls_from_the_s3_server(settings, plain_s3, dovecot, mail_user, receiver):
    user, pw = mail_user
    s3 = s3_settings(settings, plain_s3.url, webhook_url=receiver.url, webhook_secret=SECRET, webhook_url_expiry=900)
    dovecot.deliver_many([(user, MULTIPART)])
    mailbox = add_mailbox(s3, user, pw, port=dovecot.imap_port)
    assert poll_mailbox(s3, mailbox.id).outcome == "ok"
    row = Message.get(Message.mailbox == mailbox.id)
    assert not (open_store(settings).root / row.sha256[:2]).exists(), "the blob went to S3, not to the file store"
    data = payload_v2(s3, open_store(s3), row, "box")["message"]
    assert "X-Amz-Expires=900" in data["raw_url"] and "X-Amz-Signature=" in data["attachments"][0]["url"]
    assert delivery.deliver(s3, [row.id])["delivered"] == 1
    ticket = json.loads((receiver.out / f"{row.id}.json").read_text())
    assert ticket["raw_fetched"] is True and ticket["attachments"][0]["fetched"] is True
    assert (receiver.out / str(row.id) / "message.eml").read_bytes() == api.raw(row.id, s3)


def test_a_wrongly_signed_delivery_is_refused_and_retried_not_lost(settings, stored, receiver):
    wrong = settings.replace(webhook_url=receiver.url, webhook_secret="not-the-secret")
    with pytest.raises(DispatchError, match="HTTP 401"):
        delivery.deliver(wrong, [stored.id])
    assert Message.get_by_id(stored.id).dispatched_at is None
    assert not (receiver.out / f"{stored.id}.json").exists()
    right = settings.replace(webhook_url=receiver.url, webhook_secret=SECRET)
    assert delivery.deliver(right, [stored.id])["delivered"] == 1
    assert (receiver.out / f"{stored.id}.json").exists()


def test_payload_v1_is_still_available_and_headers_name_the_version(settings, stored):
    import http.server
    import threading

    seen: list[tuple[dict, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        base = settings.replace(webhook_url=url, webhook_secret=SECRET)
        delivery.deliver(base.replace(webhook_payload="1"), [stored.id])
        Message.update(dispatched_at=None).where(Message.id == stored.id).execute()
        delivery.deliver(base, [stored.id])
    finally:
        server.shutdown()
        server.server_close()
    (h1, b1), (h2, b2) = seen
    assert h1["X-Mailq-Payload-Version"] == "1" and "version" not in json.loads(b1) and "text" not in json.loads(b1)["message"]
    assert h2["X-Mailq-Payload-Version"] == "2" and json.loads(b2)["version"] == 2
    for headers, body in seen:
        assert headers["X-Mailq-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
