"""mailq/compat.py against the installed rq and imapclient: each private attribute still means what mailq assumes.

A library release that renames one of them fails here, naming the attribute, instead of in a farm.
"""

from __future__ import annotations

import signal
import time
import zlib

import pytest
import redis
from imapclient import IMAPClient
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job
from rq.worker import WorkerStatus

from mailq import compat
from mailq.imap import Client
from mailq.wire import Wire


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_an_idle_worker_asked_to_stop_is_told_apart_from_one_that_just_ended(conn, restore_signals):
    worker = SimpleWorker([Queue("default", connection=conn)], connection=conn)
    assert not compat.worker_asked_to_stop(worker)
    with pytest.raises(StopRequested):  # idle: rq sets only the shutdown date (rq's _shutdown_requested_date)
        worker.request_stop(signal.SIGTERM, None)
    assert compat.worker_asked_to_stop(worker)


def test_a_busy_worker_asked_to_stop_says_so(conn, restore_signals):
    worker = SimpleWorker([Queue("default", connection=conn)], connection=conn)
    worker.set_state(WorkerStatus.BUSY)
    worker.request_stop(signal.SIGTERM, None)  # busy: rq sets _stop_requested and finishes the job first
    assert worker._stop_requested and compat.worker_asked_to_stop(worker)


def test_a_traceback_stored_on_the_job_hash_is_read_back(conn):
    job = Queue("default", connection=conn).enqueue("mailq.jobs.noop")
    assert compat.job_exc_text(Job.fetch(job.id, connection=conn)) is None
    conn.hset(job.key, "exc_info", zlib.compress(b"Traceback (most recent call last):\nValueError: boom"))
    assert compat.job_exc_text(Job.fetch(job.id, connection=conn)).endswith("ValueError: boom")


def test_forgetting_capabilities_makes_imapclient_ask_the_server_again(dovecot, mail_user):
    user, password = mail_user
    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=5) as client:
        client.login(user, password)
        first = client.capabilities()
        assert client._cached_capabilities == first, "imapclient no longer caches capabilities in _cached_capabilities"
        compat.forget_capabilities(client)
        assert client._cached_capabilities is None
        assert client.capabilities() == first  # asked again (CAPABILITY), same answer


def test_a_quieted_imaplib_formats_no_response_for_the_log(dovecot, mail_user):
    user, password = mail_user
    dovecot.deliver(user, b"Subject: hi\r\n\r\n" + b"x" * 10_000 + b"\r\n")
    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=5) as client:
        assert client._imap.debug == 5, "imapclient no longer turns imaplib's debug output on: quiet_imaplib can go"
        messages = []
        client._imap._mesg = messages.append
        client.login(user, password)
        client.select_folder("INBOX")
        client.fetch([1], ["RFC822"])
        assert any("x" * 100 in m for m in messages)  # the body, formatted with %r
        compat.quiet_imaplib(client)
        messages.clear()
        client.fetch([1], ["RFC822"])
        assert messages == []


def test_imaplib_connections_of_one_process_share_their_tagged_response_expression(dovecot, mail_user):
    user, password = mail_user
    wire = lambda: Wire("dovecot", connect_timeout=5, read_timeout=5, min_rate=1, deadline=time.monotonic() + 30, max_literal=1 << 20)  # noqa: E731
    first = Client("127.0.0.1", dovecot.imap_port, False, None, wire())
    second = Client("127.0.0.1", dovecot.imap_port, False, None, wire())
    try:
        assert first._imap.tagpre == second._imap.tagpre, "imaplib no longer sets tagpre through the instance"
        assert first._imap.tagre is second._imap.tagre, "compiled once, then from re's cache"
        first.login(user, password)
        second.login(user, password)  # tags still count up per connection: commands still complete
        assert first.folder_status("INBOX", ["MESSAGES"]) == second.folder_status("INBOX", ["MESSAGES"])
    finally:
        first.shutdown()
        second.shutdown()
