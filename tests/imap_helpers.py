"""Helpers for the sync-engine tests: mailboxes on the test Dovecot, the server's view, fake servers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import datetime

from imapclient import IMAPClient

from mailq import mailboxes
from mailq.models import Mailbox, Message
from mailq.storage import open_store


def add_mailbox(
    settings,
    user: str,
    password: str,
    *,
    host: str = "127.0.0.1",
    port: int,
    security: str = "plain",
    folders: list[str] | None = None,
    initial_sync: str = "all",
    ca_file: str | None = None,
    name: str | None = None,
) -> Mailbox:
    spec = mailboxes.validate(
        name=name or f"mb-{user}",
        host=host,
        port=port,
        security=security,
        username=user,
        password=password,
        folders=folders,
        initial_sync=initial_sync,
        ca_file=ca_file,
    )
    return mailboxes.save(settings, spec)[0]


def server_view(dovecot, user: str, password: str, folder: str = "INBOX") -> dict[int, tuple[bytes, tuple]]:
    """UID -> (BODY.PEEK[] bytes, flags) as the server has them now."""
    with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False, timeout=30) as client:
        client.login(user, password)
        info = client.select_folder(folder, readonly=True)
        if not info.get(b"EXISTS"):
            return {}
        data = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
    return {uid: (d[b"BODY[]"], d[b"FLAGS"]) for uid, d in data.items()}


def append(dovecot, user: str, password: str, raw: bytes, folder: str = "INBOX", when: datetime | None = None) -> None:
    """IMAP APPEND with a chosen INTERNALDATE (what SEARCH SINCE looks at)."""
    with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False, timeout=30) as client:
        client.login(user, password)
        client.append(folder, raw, msg_time=when)


def rows(mailbox_id: int, folder: str | None = None) -> list[Message]:
    query = Message.select().where(Message.mailbox == mailbox_id)
    if folder is not None:
        query = query.where(Message.folder == folder)
    return list(query.order_by(Message.uid))


def stored_bytes(settings, mailbox_id: int, folder: str = "INBOX") -> dict[int, bytes]:
    store = open_store(settings)
    return {r.uid: store.get(r.sha256) for r in rows(mailbox_id, folder) if r.sha256}


@contextlib.contextmanager
def mute_server(greeting: bytes | None = None) -> Iterator[int]:
    """A TCP server that accepts and then never speaks; yields its port.

    With ``greeting`` it greets and answers the first command (CAPABILITY) first,
    so the client gets past connecting and hangs on its login instead.

    Dovecot cannot be made to do this, and it is exactly the server that hangs
    clients without timeouts (nylas#157, imapclient#327).
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if greeting:  # greet, answer the client's CAPABILITY, then fall silent
                conn.sendall(greeting)
                conn.settimeout(5)
                try:
                    tag = conn.recv(1024).split(b" ", 1)[0]
                    conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
