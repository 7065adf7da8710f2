"""The bytes under imaplib: absolute deadlines and size limits, enforced while reading.

imaplib does all its I/O through ``IMAP4.read``, ``readline`` and ``send``;
mailq's IMAP4 classes (in ``imap``) route those three through a :class:`Wire`,
so every byte a server sends passes one place that can refuse it. A socket
timeout alone bounds only the wait for the next byte: a server trickling one
byte every 2 s held a worker for minutes. Here every wait is cut at the
earliest of these absolute deadlines:

- connecting: TCP, TLS, greeting, CAPABILITY and LOGIN together finish within
  MAILQ_CONNECT_TIMEOUT of the start, however the bytes trickle;
- progress: after a command is sent, and again each time ``READ_TIMEOUT x
  MIN_TRANSFER_RATE`` bytes of its answer have arrived, the server has
  MAILQ_READ_TIMEOUT seconds to send that much again (or finish): an answer
  never stalls, or crawls below MAILQ_MIN_TRANSFER_RATE, for longer than
  MAILQ_READ_TIMEOUT;
- the poll: nothing is waited for past the poll's end (MAILQ_POLL_BUDGET_SECONDS
  plus one MAILQ_READ_TIMEOUT from its start).

Limits: a literal is checked against its limit before a byte of it is read
(MAILQ_MAX_MESSAGE_BYTES, or what the command in flight expects, see
:class:`Expect`), a line may not exceed ``MAX_LINE_BYTES``, and the whole answer
to a command may not exceed what was asked for. A refused answer closes the
connection (its unread rest cannot be skipped safely); the error says why.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ImapConnectionError, ImapTimeoutError, MailqError, ResponseRefusedError

MAX_LINE_BYTES = 4 * 1024 * 1024
"""Longest response line read (a SEARCH answer of ~500,000 UIDs); a never-ending line is refused at this size."""
_CHUNK = 256 * 1024
_FETCH_SEQ = re.compile(rb"^\* (\d+) FETCH", re.IGNORECASE)
_FETCH_UID = re.compile(rb"[( ]UID (\d+)", re.IGNORECASE)


def size_allowance(announced: int) -> int:
    """The largest literal read for a message the server announced as ``announced`` bytes (+10% + 4 KiB)."""
    return announced + announced // 10 + 4096


@dataclass
class Expect:
    """What the answer to one FETCH may contain: literals per UID and bytes in all.

    ``sizes`` are the RFC822.SIZE values the server announced (UID -> bytes),
    ``seqs`` maps sequence numbers to UIDs (a FETCH response names its message
    by sequence number, and the UID item may follow the literal).
    """

    sizes: dict[int, int]
    seqs: dict[int, int]
    limit: int  # MAILQ_MAX_MESSAGE_BYTES
    per_message: Callable[[int], int] = size_allowance
    what: str = "message"
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = sum(self.allowed(u) for u in self.sizes) + 64 * 1024

    def allowed(self, uid: int | None) -> int:
        if uid is None or uid not in self.sizes:
            return self.limit
        return min(self.limit, self.per_message(self.sizes[uid]))

    def uid_of(self, head: bytes) -> int | None:
        found = _FETCH_UID.search(head)
        if found:
            return int(found.group(1))
        found = _FETCH_SEQ.match(head)
        return self.seqs.get(int(found.group(1))) if found else None


class Wire:
    """Deadlines and limits for one connection; see the module docstring for the rules."""

    def __init__(
        self,
        where: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        min_rate: int,
        deadline: float,
        max_literal: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.where = where
        self.connect_timeout, self.read_timeout, self.min_rate = connect_timeout, read_timeout, min_rate
        self.quantum = max(1, int(read_timeout * min_rate))
        self.clock = clock
        self.started = clock()
        self.poll_deadline = deadline
        self.connect_deadline: float | None = self.started + connect_timeout
        self.max_literal = max_literal
        self.expect: Expect | None = None
        self.doing = "connecting"
        self.greeted = False
        self.broken: MailqError | None = None
        self.received = 0
        self._buf = bytearray()
        self._mark = self.started  # progress window: start, and bytes received since
        self._since_mark = 0
        self._answer_bytes = 0  # bytes of the answer to the command in flight, as consumed (not read ahead)
        self._head = b""  # first line of the response being read (it names the message of a literal)
        self._continued = False  # the next line continues a response after a literal
        self._sock: socket.socket | None = None

    # --- deadlines -------------------------------------------------------------------------------------------------------

    def connected(self) -> None:
        """Connecting is over (logged in, capabilities read): only the progress and poll deadlines apply now."""
        self.connect_deadline = None

    def _deadline(self) -> tuple[float, str]:
        candidates = [(self._mark + self.read_timeout, "progress"), (self.poll_deadline, "poll")]
        if self.connect_deadline is not None:
            candidates.append((self.connect_deadline, "connect"))
        return min(candidates)

    def _remaining(self) -> float:
        when, rule = self._deadline()
        left = when - self.clock()
        if left <= 0:
            self._fail(self._timeout_error(rule))
        return left

    def _timeout_error(self, rule: str) -> ImapTimeoutError:
        where, doing = self.where, self.doing
        elapsed = self.clock() - self.started
        if rule == "connect":
            budget = f"connecting, TLS, greeting and login must finish within MAILQ_CONNECT_TIMEOUT ({self.connect_timeout:g}s)"
            if not self.greeted and self.received == 0:
                text = f"{where} did not answer after {self.connect_timeout:g}s (no greeting; {budget}): the server is down, overloaded or firewalled"
            elif not self.greeted:
                text = f"{where} sent its greeting too slowly ({self.received} bytes in {elapsed:.1f}s; {budget}): the server is overloaded or not an IMAP server"
            else:
                text = f"{where} was too slow while {doing} ({budget}): the server is overloaded; raise MAILQ_CONNECT_TIMEOUT if it is just slow"
        elif rule == "poll":
            text = (
                f"{where} was still answering when the poll's time ran out while {doing} (MAILQ_POLL_BUDGET_SECONDS + "
                f"MAILQ_READ_TIMEOUT = {self.poll_deadline - self.started:.0f}s after connecting): the rest waits for the next poll"
            )
        elif self._answer_bytes == 0 and self._since_mark == 0:
            text = (
                f"{where} did not answer after {self.read_timeout:g}s while {doing} (MAILQ_READ_TIMEOUT): the server is slow or "
                "unreachable; raise MAILQ_READ_TIMEOUT if it is just slow"
            )
        else:
            text = (
                f"{where} stalled while {doing}: {self._since_mark} bytes in the last {self.read_timeout:g}s, below "
                f"MAILQ_MIN_TRANSFER_RATE ({self.min_rate} bytes/s over MAILQ_READ_TIMEOUT): the server or the link is too slow"
            )
        return ImapTimeoutError(text)

    def _fail(self, error: MailqError) -> None:
        """Close the connection (its state is unknown now) and raise ``error``; later calls raise at once."""
        self.broken = error
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise error

    def _check(self) -> None:
        if self.broken is not None:
            raise ImapConnectionError(f"{self.where}: the connection was closed after an earlier error ({self.broken})")

    # --- connecting ------------------------------------------------------------------------------------------------------

    def connect(self, host: str, port: int) -> socket.socket:
        """TCP connection within the connect deadline."""
        try:
            sock = socket.create_connection((host or None, port), timeout=self._remaining())
        except TimeoutError:
            self._fail(self._timeout_error("connect"))
        self._sock = sock
        return sock

    def handshake(self, tls: ssl.SSLSocket) -> None:
        """Finish a TLS handshake by the connect deadline (a blocking handshake waits per read, not in total)."""
        self._check()
        if self._buf:
            self._fail(
                ResponseRefusedError(f"{self.where} sent data after STARTTLS before the TLS handshake: refused (an injection attempt?)")
            )
        self._sock = tls
        tls.settimeout(0)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    ready = select.select([tls], [], [], self._remaining())[0]
                except ssl.SSLWantWriteError:
                    ready = select.select([], [tls], [], self._remaining())[1]
                if not ready:
                    self._remaining()  # raises: the deadline passed
        finally:
            tls.settimeout(None)

    # --- reading ---------------------------------------------------------------------------------------------------------

    def _recv(self, sock: socket.socket, into: memoryview | None = None) -> int:
        """One read from the socket within the deadline: into ``into``, else appended to the buffer; 0 at EOF."""
        self._check()
        self._sock = sock
        while True:
            sock.settimeout(self._remaining())
            try:
                if into is not None:
                    n = sock.recv_into(into)
                else:
                    data = sock.recv(_CHUNK)
                    self._buf += data
                    n = len(data)
                break
            except (TimeoutError, ssl.SSLWantReadError):
                continue  # _remaining() raises once the deadline has passed
        self.received += n
        self._since_mark += n
        if self._since_mark >= self.quantum:
            self._mark, self._since_mark = self.clock(), 0
        return n

    def readline(self, sock: socket.socket) -> bytes:
        """A line up to CRLF (or whatever came before EOF), at most MAX_LINE_BYTES."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                break
            start = len(self._buf)
            if start > MAX_LINE_BYTES:
                self._fail(
                    ResponseRefusedError(
                        f"{self.where} sent a response line longer than {MAX_LINE_BYTES} bytes while {self.doing}: "
                        "refused unread and the connection closed (a broken or hostile server)"
                    )
                )
            if self._recv(sock) == 0:
                end = len(self._buf) - 1
                break
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        self._answer_bytes += len(line)
        if not self._continued:
            self._head = line[:512]
            self.greeted = True
        self._continued = False
        return line

    def read(self, sock: socket.socket, size: int) -> bytes:
        """A literal of ``size`` bytes, refused before it is read when it is over its limit."""
        self._check_literal(size)
        out = bytearray(size)
        view = memoryview(out)
        have = min(size, len(self._buf))
        view[:have] = self._buf[:have]
        del self._buf[:have]
        while have < size:
            n = self._recv(sock, view[have:])
            if n == 0:
                break
            have += n
        view.release()
        self._answer_bytes += have
        self._continued = True
        if have < size:
            del out[have:]
        return bytes(out)

    def _check_literal(self, size: int) -> None:
        expect = self.expect
        uid = expect.uid_of(self._head) if expect else None
        limit = expect.allowed(uid) if expect else self.max_literal
        if size > limit:
            announced = expect.sizes.get(uid) if expect and uid is not None else None
            if announced is not None:
                text = (
                    f"{self.where} announced {announced} bytes (RFC822.SIZE) for UID {uid} but began sending a {size}-byte "
                    f"{expect.what}: refused unread (limit {limit} bytes) and the connection closed; the message is recorded as skipped"
                )
            else:
                text = (
                    f"{self.where} began sending a {size}-byte literal while {self.doing}: refused unread (over "
                    f"MAILQ_MAX_MESSAGE_BYTES = {self.max_literal}) and the connection closed"
                )
            self._fail(ResponseRefusedError(text, uid=uid if announced is not None else None))
        if expect and self._answer_bytes + size > expect.total:
            self._fail(
                ResponseRefusedError(
                    f"{self.where} sent more than {expect.total} bytes in answer to a FETCH of {len(expect.sizes)} message(s) "
                    "(repeated or unrequested responses): refused and the connection closed"
                )
            )

    # --- writing ---------------------------------------------------------------------------------------------------------

    def send(self, sock: socket.socket, data: bytes) -> None:
        """Send a command (or part of one): a new answer starts, with a fresh progress window."""
        self._check()
        self._sock = sock
        self._mark, self._since_mark, self._answer_bytes = self.clock(), 0, 0
        try:
            sock.settimeout(self._remaining())
            sock.sendall(data)
        except TimeoutError:
            self._fail(self._timeout_error("progress"))
