"""A minimal IMAP client on asyncio streams: just enough to log in, EXAMINE one folder and IDLE.

Why not imapclient: its ``idle_check`` blocks a thread per connection, and one
idler holds thousands. Why not aioimaplib: it parses every response into
objects and keeps per-connection queues and timers; the idler needs only the
greeting, LOGIN, CAPABILITY, EXAMINE, IDLE/DONE, LOGOUT and a few untagged
lines, under absolute deadlines, in a few KB per connection.

Every wait has a deadline; every failure leaves as a mailq error (the same
classes ``imap.py`` raises), and the password never appears in an error.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from dataclasses import dataclass

from ..errors import AuthError, ImapConnectionError, ImapError, ImapTimeoutError, ProtocolError, TLSError

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_UNTAGGED_NUM = re.compile(rb"^\* (\d+) (EXISTS|RECENT|EXPUNGE|FETCH)\b", re.I)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.I)
_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.I)
_TRANSIENT_LOGIN = (b"[UNAVAILABLE]", b"[SERVERBUG]", b"[LIMIT]", b"[INUSE]", b"TRY AGAIN", b"BACKOFF")
MAX_LINE = 64 * 1024
"""Longest response line (plus literals) kept; the idler never asks for message data."""
MAX_LITERAL = 1024 * 1024


@dataclass
class Event:
    """What an untagged response during IDLE means to the idler."""

    new_mail: bool = False


class IdleClient:
    """One connection. Not thread-safe; one coroutine drives it."""

    def __init__(self, where: str):
        self.where = where
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.capabilities: set[str] = set()
        self.exists = 0
        self.uidnext: int | None = None
        self._tag = 0
        self._idle_tag: bytes | None = None

    # -- connection -------------------------------------------------------

    async def open(self, host: str, port: int, security: str, context: ssl.SSLContext | None, timeout: float) -> None:
        """TCP (+TLS or STARTTLS) and the greeting, all within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=context if security == "ssl" else None,
                    server_hostname=host if security == "ssl" else None,
                    limit=MAX_LINE,
                )
                _keepalive(self.writer)
                greeting = await self._line()
                if greeting.upper().startswith(b"* BYE"):
                    raise ImapConnectionError(f"{self.where} refused the session ({_text(greeting)}): transient, will retry")
                self._caps_from(greeting)
                if security == "starttls":
                    if "STARTTLS" not in (self.capabilities or await self._ask_capabilities()):
                        raise TLSError(f"{self.where} does not offer STARTTLS: use --security ssl (port 993)")
                    await self.command(b"STARTTLS")
                    await self.writer.start_tls(context, server_hostname=host)
                    self.capabilities = set()
        except TimeoutError:
            self.close()
            raise ImapTimeoutError(f"{self.where} did not answer within {timeout:g}s while connecting: slow or unreachable") from None
        except ImapError:
            self.close()
            raise
        except ssl.SSLError as exc:
            self.close()
            raise TLSError(f"TLS with {self.where} failed ({exc.reason or exc}): check the port and --security", orig=exc) from None
        except OSError as exc:
            self.close()
            raise ImapConnectionError(f"cannot connect to {self.where} ({exc.strerror or exc}): transient, will retry", orig=exc) from None

    async def login(self, username: str, password: str, timeout: float) -> None:
        """LOGIN; a NO is ``AuthError`` unless the server says it is temporary."""
        try:
            async with asyncio.timeout(timeout):
                status, line = await self._tagged(b"LOGIN", _astring(username), _astring(password))
                if status != b"OK":
                    text = _text(line.split(b" ", 1)[-1])
                    text = text.replace(password, "***") if password else text
                    if any(m in line.upper() for m in _TRANSIENT_LOGIN):
                        raise ImapConnectionError(f"{self.where} cannot log in {username} right now ({text}): transient, will retry")
                    raise AuthError(
                        f"login rejected by {self.where} for user {username} ({text}): check the password "
                        "(polling stops until it changes or the mailbox is resumed)"
                    )
                self._caps_from(line)
                if not self.capabilities:
                    await self._ask_capabilities()
        except TimeoutError:
            raise ImapTimeoutError(f"{self.where} did not answer within {timeout:g}s while logging in") from None

    async def authenticate(self, username: str, mechanism: str, token: str, timeout: float, on_rejection: str) -> None:
        """SASL XOAUTH2 or OAUTHBEARER with an access token (sent inline where the server has SASL-IR).

        A refusal is ``AuthError`` carrying ``on_rejection`` (what to check); the
        token never appears in it. A server's error challenge is answered with an
        empty line, as RFC 7628 asks, so the refusal arrives as a tagged NO.
        """
        if mechanism == "oauthbearer":
            raw = f"n,a={username},\x01auth=Bearer {token}\x01\x01"
        else:
            raw = f"user={username}\x01auth=Bearer {token}\x01\x01"
        payload = base64.b64encode(raw.encode())
        self._tag += 1
        tag = b"a%d" % self._tag
        inline = "SASL-IR" in self.capabilities
        try:
            async with asyncio.timeout(timeout):
                command = tag + b" AUTHENTICATE " + mechanism.upper().encode()
                self.writer.write(command + (b" " + payload if inline else b"") + b"\r\n")
                await self.writer.drain()
                sent = inline
                while not (line := await self._line()).startswith(tag + b" "):
                    if line.startswith(b"+"):
                        self.writer.write((b"" if sent else payload) + b"\r\n")  # the payload once, then abort
                        await self.writer.drain()
                        sent = True
                    else:
                        self._untagged(line)
                status = line.split(b" ", 2)[1].upper() if line.count(b" ") else b"BAD"
                if status != b"OK":
                    text = _text(line.split(b" ", 1)[-1]).replace(token, "***")
                    if any(m in line.upper() for m in _TRANSIENT_LOGIN):
                        raise ImapConnectionError(f"{self.where} cannot sign in {username} right now ({text}): transient, will retry")
                    raise AuthError(f"{self.where} refused the OAuth2 sign-in of {username} ({text}): {on_rejection}")
                self._caps_from(line)
                if not self.capabilities:
                    await self._ask_capabilities()
        except TimeoutError:
            raise ImapTimeoutError(f"{self.where} did not answer within {timeout:g}s while signing in") from None

    async def examine(self, folder: str, timeout: float) -> None:
        """EXAMINE (read-only: never clears \\Recent or sets flags); records EXISTS and UIDNEXT."""
        self.uidnext = None
        try:
            async with asyncio.timeout(timeout):
                status, line = await self._tagged(b"EXAMINE", _astring(folder))
        except TimeoutError:
            raise ImapTimeoutError(f"{self.where} did not answer within {timeout:g}s while opening {folder!r}") from None
        if status != b"OK":
            raise ProtocolError(f"{self.where} cannot open folder {folder!r} ({_text(line)})")

    # -- IDLE -------------------------------------------------------------

    async def idle(self, timeout: float) -> None:
        """Start IDLE: returns once the server sent its continuation."""
        self._tag += 1
        tag = b"i%d" % self._tag
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(tag + b" IDLE\r\n")
                await self.writer.drain()
                while True:
                    line = await self._line()
                    if line.startswith(b"+"):
                        self._idle_tag = tag
                        return
                    if line.startswith(tag + b" "):
                        raise ProtocolError(f"{self.where} refused IDLE ({_text(line)})")
                    self._untagged(line)
        except TimeoutError:
            raise ImapTimeoutError(f"{self.where} did not accept IDLE within {timeout:g}s") from None

    async def wait(self, timeout: float) -> Event | None:
        """The next untagged response while idling (None when ``timeout`` passes quietly)."""
        try:
            async with asyncio.timeout(timeout):
                line = await self._line()
        except TimeoutError:
            return None
        return self._untagged(line)

    async def done(self, timeout: float) -> Event:
        """End IDLE (DONE) and wait for its tagged OK; what came meanwhile is returned."""
        event = Event()
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(b"DONE\r\n")
                await self.writer.drain()
                while True:
                    line = await self._line()
                    if line.startswith(self._idle_tag + b" "):
                        self._idle_tag = None
                        return event
                    seen = self._untagged(line)
                    event.new_mail |= seen.new_mail
        except TimeoutError:
            raise ImapTimeoutError(f"{self.where} did not end IDLE within {timeout:g}s: the connection is dead") from None

    async def logout(self, timeout: float) -> None:
        """Polite LOGOUT, best effort within ``timeout``; always closes."""
        try:
            async with asyncio.timeout(timeout):
                if self._idle_tag is not None:
                    await self.done(timeout)
                await self._tagged(b"LOGOUT")
        except (TimeoutError, ImapError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None

    # -- parsing ----------------------------------------------------------

    def _untagged(self, line: bytes) -> Event:
        upper = line[:64].upper()
        if upper.startswith(b"* BYE"):
            raise ImapConnectionError(f"{self.where} closed the session ({_text(line)}): transient, will reconnect")
        m = _UNTAGGED_NUM.match(line)
        if m:
            n, what = int(m.group(1)), m.group(2).upper()
            if what == b"EXISTS":
                grew = n > self.exists
                self.exists = n
                return Event(new_mail=grew)
            if what == b"EXPUNGE":
                self.exists = max(0, self.exists - 1)
            elif what == b"RECENT":
                return Event(new_mail=n > 0)
            elif what == b"FETCH" and n > self.exists:  # a message number past the known end: new mail
                self.exists = n
                return Event(new_mail=True)
            return Event()
        m = _UIDNEXT.search(line)
        if m:
            self.uidnext = int(m.group(1))
        self._caps_from(line)
        return Event()

    def _caps_from(self, line: bytes) -> None:
        m = _CAPS.search(line)
        if m:
            self.capabilities = {c.decode("ascii", "replace").upper() for c in m.group(1).split()}
        elif line.upper().startswith(b"* CAPABILITY "):
            self.capabilities = {c.decode("ascii", "replace").upper() for c in line[13:].split()}

    async def _ask_capabilities(self) -> set[str]:
        await self.command(b"CAPABILITY")
        return self.capabilities

    async def command(self, *parts: bytes) -> bytes:
        status, line = await self._tagged(*parts)
        if status != b"OK":
            raise ProtocolError(f"{self.where} answered {parts[0].decode()} with {_text(line)}")
        return line

    async def _tagged(self, *parts: bytes) -> tuple[bytes, bytes]:
        """Send a command (literals handled) and read until its tagged reply: (OK|NO|BAD, line)."""
        self._tag += 1
        tag = b"a%d" % self._tag
        chunks = [tag]
        for part in parts:
            if isinstance(part, _Literal):
                self.writer.write(b" ".join(chunks) + b" {%d}\r\n" % len(part.data))
                await self.writer.drain()
                while not (line := await self._line()).startswith(b"+"):
                    if line.startswith(tag + b" "):
                        return line.split(b" ", 2)[1].upper(), line
                    self._untagged(line)
                chunks = [part.data]
            else:
                chunks.append(part)
        self.writer.write(b" ".join(chunks) + b"\r\n")
        await self.writer.drain()
        while True:
            line = await self._line()
            if line.startswith(tag + b" "):
                status = line.split(b" ", 2)[1].upper() if line.count(b" ") else b"BAD"
                self._caps_from(line)
                m = _UIDNEXT.search(line)
                if m:
                    self.uidnext = int(m.group(1))
                return status, line
            self._untagged(line)

    async def _line(self) -> bytes:
        """One response line with any literals inlined; EOF is a dropped connection."""
        try:
            line = await self.reader.readuntil(b"\r\n")
            while m := _LITERAL.search(line[-24:]):
                size = int(m.group(1))
                if size > MAX_LITERAL or len(line) > MAX_LINE:
                    raise ProtocolError(f"{self.where} sent a {size}-byte literal the idler never asked for")
                line += await self.reader.readexactly(size)
                line += await self.reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            raise ImapConnectionError(f"{self.where} closed the connection: transient, will reconnect") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"{self.where} sent a response line over {MAX_LINE} bytes") from None
        except ssl.SSLError as exc:
            raise TLSError(f"TLS with {self.where} failed ({exc.reason or exc})", orig=exc) from None
        except OSError as exc:
            raise ImapConnectionError(f"{self.where} dropped the connection ({exc.strerror or exc}): will reconnect", orig=exc) from None
        return line[:-2]


class _Literal(bytes):
    @property
    def data(self) -> bytes:
        return bytes(self)


def _astring(value: str) -> bytes:
    """A quoted string, or a literal when the value cannot be quoted (8-bit, CR/LF, very long)."""
    data = value.encode("utf-8")
    if len(data) < 1000 and all(32 <= b < 127 for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return _Literal(data)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").strip()[:300]


def _keepalive(writer: asyncio.StreamWriter) -> None:
    """TCP keepalive: a peer gone without a FIN (NAT, power loss) is noticed within minutes, not hours."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 120)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    except OSError:
        pass
