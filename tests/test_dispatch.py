"""Downstream dispatch: hook and signed webhook, once per message, retries that don't redeliver, the outbox."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job

from mailq import delivery, mailboxes, outbox
from mailq.errors import DispatchError
from mailq.models import Message, utcnow
from mailq.queues import connect

# -- hooks the tests (and the farm's worker processes, via PYTHONPATH) import by name -------------------------------


def recording_hook(message_id: int) -> None:
    """Appends the id to $MAILQ_TEST_HOOK_LOG; fails while the file $MAILQ_TEST_HOOK_FAIL exists."""
    log = Path(os.environ["MAILQ_TEST_HOOK_LOG"])
    flag = os.environ.get("MAILQ_TEST_HOOK_FAIL")
    with open(log.with_suffix(".attempts"), "a") as f:
        f.write(f"{message_id}\n")
    if flag and Path(flag).exists():
        raise RuntimeError(f"hook refuses message {message_id} (test flag set)")
    with open(log, "a") as f:
        f.write(f"{message_id}\n")


def hook_log(path: Path, suffix: str = ".log") -> list[int]:
    p = path.with_suffix(suffix)
    return [int(x) for x in p.read_text().split()] if p.exists() else []


class Receiver:
    """A loopback HTTP server recording webhook POSTs; answers 500 while ``failing``."""

    def __init__(self, secret: str):
        self.secret = secret
        self.bodies: list[dict] = []
        self.bad_signatures = 0
        self.failing = False
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Mailq-Signature", ""), expected):
                    receiver.bad_signatures += 1
                if receiver.failing:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[int]:
        return [b["message"]["id"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver("s3cret")
    yield r
    r.close()


@pytest.fixture
def hook_env(tmp_path, monkeypatch):
    log = tmp_path / "hook.log"
    monkeypatch.setenv("MAILQ_TEST_HOOK_LOG", str(log))
    monkeypatch.setenv("MAILQ_TEST_HOOK_FAIL", str(tmp_path / "fail.flag"))
    return log


def _messages(settings, n: int, age: timedelta = timedelta(0)) -> list[int]:
    spec = mailboxes.validate(name=f"d{os.getpid()}", host="127.0.0.1", port=143, security="plain", username="u", password="p")
    box = mailboxes.save(settings, spec)[0]
    start = Message.select().count()
    return [
        Message.create(mailbox=box, folder="INBOX", uidvalidity=1, uid=start + i + 1, subject=f"s{i}", created_at=utcnow() - age).id
        for i in range(n)
    ]


class FakeJob:
    def __init__(self):
        self.meta: dict = {}

    def save_meta(self):
        pass


def test_without_a_hook_or_webhook_nothing_is_dispatched(settings):
    assert not outbox.configured(settings)
    _messages(settings, 3, age=timedelta(minutes=5))
    assert outbox.sweep(settings, connect(settings)) == 0
    assert Queue("workflow", connection=connect(settings)).count == 0


def test_each_message_goes_to_the_hook_once_and_a_repeat_delivers_nothing(settings, hook_env):
    settings = settings.replace(hook="tests.test_dispatch:recording_hook")
    ids = _messages(settings, 3)
    assert delivery.deliver(settings, ids) == {"delivered": 3, "already": 0, "missing": 0}
    assert delivery.deliver(settings, ids) == {"delivered": 0, "already": 3, "missing": 0}
    assert hook_log(hook_env) == ids
    assert all(m.dispatched_at for m in Message.select().where(Message.id.in_(ids)))


def test_a_failing_hook_raises_and_a_retry_delivers_only_what_is_left(settings, hook_env):
    settings = settings.replace(hook="tests.test_dispatch:recording_hook")
    ids = _messages(settings, 2)
    flag = Path(os.environ["MAILQ_TEST_HOOK_FAIL"])
    delivery.deliver(settings, ids[:1])
    flag.touch()
    with pytest.raises(DispatchError, match="1 of 2 message"):
        delivery.deliver(settings, ids)
    flag.unlink()
    assert delivery.deliver(settings, ids)["delivered"] == 1
    assert hook_log(hook_env) == ids


def test_the_webhook_is_signed_and_a_webhook_retry_does_not_call_the_hook_again(settings, hook_env, receiver):
    settings = settings.replace(hook="tests.test_dispatch:recording_hook", webhook_url=receiver.url, webhook_secret="s3cret")
    ids = _messages(settings, 2)
    job = FakeJob()
    receiver.failing = True
    with pytest.raises(DispatchError, match="HTTP 500"):
        delivery.deliver(settings, ids, job)
    assert job.meta["hook_done"] == ids
    receiver.failing = False
    delivery.deliver(settings, ids, job)
    assert hook_log(hook_env) == ids, "the hook ran once per message"
    assert receiver.ids() == ids and receiver.bad_signatures == 0
    body = receiver.bodies[0]
    assert body["event"] == "message.new" and body["message"]["subject"] == "s0"
    assert set(body["message"]) >= {"id", "mailbox_id", "mailbox", "folder", "uid", "message_id", "sha256"}


def test_a_batch_is_claimed_and_enqueued_as_one_job_with_retries(settings):
    settings = settings.replace(hook="tests.test_dispatch:recording_hook", dispatch_retry_delays="1,5,25")
    ids = _messages(settings, 4)
    conn = connect(settings)
    job_id = outbox.enqueue_batch(settings, conn, ids)
    job = Job.fetch(job_id, connection=conn)
    assert job.origin == "workflow" and list(job.args) == [ids]
    assert (job.retries_left, job.retry_intervals) == (3, [1, 5, 25])
    assert outbox.message_claims(conn, ids) == {m: job_id for m in ids}


def test_the_outbox_sweep_dispatches_only_rows_no_live_job_covers(settings):
    settings = settings.replace(hook="tests.test_dispatch:recording_hook")
    conn = connect(settings)
    old = _messages(settings, 6, age=timedelta(minutes=5))
    young = _messages(settings, 1)
    covered = outbox.enqueue_batch(settings, conn, old[:2])  # queued: left alone
    outbox.claim_messages(conn, old[2:3], "dsp-gone")  # its job vanished (e.g. a flushed Redis)
    outbox.abandon_message_claims(conn, old[3:4])  # an operator deleted its failed job
    Message.update(dispatched_at=utcnow()).where(Message.id == old[4]).execute()

    assert outbox.sweep(settings, conn) == 2  # old[2] and old[5]
    assert outbox.sweep(settings, conn) == 0, "never enqueued twice"
    claims = outbox.message_claims(conn, old + young)
    assert claims[old[0]] == claims[old[1]] == covered and claims[old[3]] == outbox.DROPPED
    swept = {claims[old[2]], claims[old[5]]}
    assert len(swept) == 1 and covered not in swept and young[0] not in claims
    assert Queue("workflow", connection=conn).count == 2
