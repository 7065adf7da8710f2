"""One IMAP session on imapclient: connect, verify TLS, log in, and speak in mailq errors.

Every library, socket and TLS failure leaves this module as a mailq error class
whose text names the server and says what to do, so the caller (sync, health,
CLI) never sees imaplib or ssl exceptions. The password is never part of an
error text or a log line.

All I/O goes through a :class:`wire.Wire` (deadlines and size limits enforced
while reading, see ``mailq.wire``), and imapclient's parser reads RFC 3516
binary literals (``mailq.literal8``).

TLS is verified by default (``ssl.create_default_context()``, plus the mailbox's
or the global CA file): ``imaplib.IMAP4_SSL`` without a context does not verify
on Python 3.11. Plain text is used only when the mailbox says ``security=plain``.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient, imap4, tls
from imapclient import exceptions as imx

from . import auth, compat, literal8
from .config import Settings
from .errors import AuthError, ImapConnectionError, ImapError, ImapTimeoutError, MailqError, ProtocolError, TLSError
from .models import Mailbox
from .wire import Expect, Wire

literal8.install()

# Server texts that mean "come back later", not "bad credentials" (RFC 5530 codes, Exchange).
_TRANSIENT_LOGIN = ("[UNAVAILABLE]", "[SERVERBUG]", "[LIMIT]", "[INUSE]", "TRY AGAIN", "BACKOFF")


def ssl_context(settings: Settings, mailbox: Mailbox) -> ssl.SSLContext:
    """A verifying client context; the mailbox's CA file wins over the global one."""
    cafile = (getattr(mailbox, "ca_file", None) or settings.ca_file or "").strip()
    try:
        context = ssl.create_default_context()
        if cafile:
            context.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(
            f"cannot load the CA file {cafile}: {getattr(exc, 'strerror', None) or exc}: fix the mailbox's --ca-file or MAILQ_CA_FILE",
            orig=exc,
        ) from None
    return context


def _where(mailbox: Mailbox) -> str:
    return f"{mailbox.host}:{mailbox.port}"


def map_error(exc: BaseException, mailbox: Mailbox, doing: str, timeout: float | None = None) -> MailqError:
    """Translate a library/socket/TLS error raised while ``doing`` something into a mailq error."""
    where = _where(mailbox)
    if isinstance(exc, MailqError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return TLSError(
            f"the certificate of {where} is not trusted ({reason}): give the server's CA with "
            "--ca-file (or MAILQ_CA_FILE), or fix the server's certificate",
            orig=exc,
        )
    if isinstance(exc, ssl.SSLError):
        return TLSError(
            f"TLS with {where} failed while {doing} ({exc.reason or exc}): check the port and --security (ssl for 993, starttls for 143)",
            orig=exc,
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        limit = f" after {timeout:g}s" if timeout else ""
        return ImapTimeoutError(
            f"{where} did not answer{limit} while {doing}: the server is slow or unreachable "
            "(firewall?); raise MAILQ_CONNECT_TIMEOUT/MAILQ_READ_TIMEOUT if it is just slow",
            orig=exc,
        )
    if isinstance(exc, socket.gaierror):
        return ImapConnectionError(f"cannot resolve host {mailbox.host} ({exc.strerror or exc}): check the host name and DNS", orig=exc)
    if isinstance(exc, ConnectionRefusedError):
        return ImapConnectionError(f"connection to {where} refused: check the host and port, and that the IMAP server is running", orig=exc)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, EOFError)):
        return ImapConnectionError(f"{where} closed the connection while {doing}: transient, will retry", orig=exc)
    if isinstance(exc, OSError):
        return ImapConnectionError(f"network error talking to {where} while {doing} ({exc.strerror or exc}): check connectivity", orig=exc)
    if isinstance(exc, imaplib.IMAP4.abort):  # includes IMAPClientAbortError: socket EOF, BYE
        text = _server_text(exc)
        return ImapConnectionError(f"{where} dropped the session while {doing} ({text}): transient, will retry", orig=exc)
    if isinstance(exc, (imaplib.IMAP4.error, imx.IMAPClientError)):
        text = _server_text(exc)
        if "backoff" in text.lower():  # Exchange throttling: BAD ... Suggested Backoff Time: N ms
            return ImapConnectionError(f"{where} throttles this client ({text}): transient, will back off", orig=exc)
        if "authenticated but not connected" in text.lower():  # Exchange: the account is not usable
            return AuthError(
                f"{where} accepted the login of {mailbox.username} but refuses the mailbox ({text}): check the account's IMAP access",
                orig=exc,
            )
        return ProtocolError(f"{where} refused {doing}: {text}", orig=exc)
    return ProtocolError(f"unexpected reply from {where} while {doing}: {type(exc).__name__}: {exc}", orig=exc)


def _server_text(exc: BaseException) -> str:
    text = str(exc).strip()
    for prefix in ("command: ", "b'", 'b"'):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.rstrip("'\"")[:300] or type(exc).__name__


class Session:
    """A logged-in connection. Use as a context manager; every call raises mailq errors only."""

    def __init__(self, client: Client, mailbox: Mailbox, settings: Settings):
        self.client = client
        self.wire: Wire = client.wire
        self.mailbox = mailbox
        self.settings = settings
        self.capabilities: set[str] = set()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        self.wire.doing = doing
        try:
            yield
        except MailqError:
            raise
        except Exception as exc:
            raise map_error(exc, self.mailbox, doing, self.settings.read_timeout) from None

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def refresh_capabilities(self) -> set[str]:
        with self._guard("asking for capabilities"):
            compat.forget_capabilities(self.client)
            self.capabilities = {
                c.decode("ascii", "replace").upper() if isinstance(c, bytes) else str(c).upper() for c in self.client.capabilities()
            }
        return self.capabilities

    def list_folders(self) -> list[str]:
        with self._guard("listing folders"):
            return [name for _flags, _delim, name in self.client.list_folders()]

    def examine(self, folder: str) -> dict[bytes, Any]:
        """Select ``folder`` read-only (EXAMINE): fetching can then never set flags."""
        with self._guard(f"opening folder {folder!r}"):
            return self.client.select_folder(folder, readonly=True)

    def status(self, folder: str, items: list[str]) -> dict[bytes, Any]:
        with self._guard(f"asking the status of folder {folder!r}"):
            return self.client.folder_status(folder, items)

    def search(self, criteria: list[Any]) -> list[int]:
        """UID SEARCH; UIDs come back sorted and distinct (servers may send them in any order, even twice)."""
        with self._guard("searching for new messages"):
            return sorted({int(u) for u in self.client.search(criteria)})  # a repeated UID counts once

    @contextlib.contextmanager
    def expecting(self, expect: Expect) -> Iterator[None]:
        """Commands in this block may only receive the literals ``expect`` allows (checked before they are read)."""
        self.wire.expect = expect
        try:
            yield
        finally:
            self.wire.expect = None

    def fetch(self, uids: list[int] | str, items: list[str]) -> dict[int, dict[bytes, Any]]:
        with self._guard(f"fetching {items[0] if items else 'messages'}"):
            return self.client.fetch(uids, items)

    def close(self) -> None:
        """Log out politely; a dead connection is just shut down."""
        try:
            self.client.logout()
        except Exception:
            try:
                self.client.shutdown()
            except Exception:
                pass


class _WiredIO(compat.OneTagPrefix):
    """imaplib's three I/O routines (read, readline, send) and its socket, through the connection's Wire."""

    wire: Wire

    def _create_socket(self, timeout=None):
        return self._secure(self.wire.connect(self.host, self.port))

    def _secure(self, sock: socket.socket) -> socket.socket:
        return sock

    def read(self, size):
        return self.wire.read(self.sock, size)

    def readline(self):
        return self.wire.readline(self.sock)

    def send(self, data):
        self.wire.send(self.sock, data)


class _PlainIMAP4(_WiredIO, imap4.IMAP4WithTimeout):
    def __init__(self, host: str, port: int, wire: Wire):
        self.wire = wire
        super().__init__(host, port, None)


class _TLSIMAP4(_WiredIO, tls.IMAP4_TLS):
    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext, wire: Wire):
        self.wire = wire
        super().__init__(host, port, ssl_context, None)

    def _secure(self, sock: socket.socket) -> socket.socket:
        return _DeadlineContext(self.ssl_context, self.wire).wrap_socket(sock, server_hostname=self.host)


class _DeadlineContext:
    """An SSL context whose handshakes finish by the wire's deadline (used for implicit TLS and STARTTLS)."""

    def __init__(self, context: ssl.SSLContext, wire: Wire):
        self.context, self.wire = context, wire

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None, **_: Any) -> ssl.SSLSocket:
        tls_sock = self.context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        self.wire.handshake(tls_sock)
        return tls_sock


class Client(IMAPClient):
    """IMAPClient whose imaplib connection does its I/O through ``wire``."""

    def __init__(self, host: str, port: int, use_ssl: bool, ssl_context: ssl.SSLContext | None, wire: Wire):
        self.wire = wire
        super().__init__(host, port=port, ssl=use_ssl, ssl_context=ssl_context, timeout=None)
        compat.quiet_imaplib(self)

    def _create_IMAP4(self):
        if self.ssl:
            return _TLSIMAP4(self.host, self.port, self.ssl_context, self.wire)
        return _PlainIMAP4(self.host, self.port, self.wire)

    def _set_read_timeout(self) -> None:
        """The wire sets a timeout before every read and write."""


def new_wire(settings: Settings, mailbox: Mailbox, deadline: float | None = None) -> Wire:
    """The wire of one connection; ``deadline`` (monotonic) is when the poll must be over."""
    now = time.monotonic()
    return Wire(
        _where(mailbox),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        min_rate=settings.min_transfer_rate,
        deadline=deadline if deadline is not None else now + settings.poll_budget_seconds + settings.read_timeout,
        max_literal=settings.max_message_bytes,
    )


def _open_client(settings: Settings, mailbox: Mailbox, wire: Wire) -> Client:
    """TCP (+TLS) and greeting (and STARTTLS) by the wire's connect deadline."""
    security = (mailbox.security or "ssl").lower()
    context = ssl_context(settings, mailbox) if security in ("ssl", "starttls") else None
    try:
        client = Client(mailbox.host, mailbox.port, security == "ssl", context, wire)
    except Exception as exc:
        raise map_error(exc, mailbox, "connecting", settings.connect_timeout) from None
    if security == "starttls":
        try:
            wire.doing = "starting TLS"
            caps = {c.upper() for c in client.capabilities()}
            if b"STARTTLS" not in caps:
                raise TLSError(
                    f"{_where(mailbox)} does not offer STARTTLS: use --security ssl (port 993), or plain only on a trusted network"
                )
            client.starttls(_DeadlineContext(context, wire))
            compat.forget_capabilities(client)
        except Exception as exc:
            _shutdown(client)
            raise map_error(exc, mailbox, "starting TLS", settings.connect_timeout) from None
    return client


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:
        pass


def _sign_in(client: Client, creds: auth.Credentials) -> None:
    if creds.mechanism == "xoauth2":
        client.oauth2_login(creds.username, creds.secret)
    elif creds.mechanism == "oauthbearer":
        client.oauthbearer_login(creds.username, creds.secret)
    else:
        client.login(creds.username, creds.secret)


def _login(client: Client, settings: Settings, mailbox: Mailbox, creds: auth.Credentials) -> None:
    """Sign in with the authenticator's credentials; refused cached ones get one renewal and one retry."""
    client.wire.doing = "logging in"
    while True:
        try:
            _sign_in(client, creds)
            return
        except imx.LoginError as exc:
            text = _server_text(exc).replace(creds.secret, "***") if creds.secret else _server_text(exc)
            if isinstance(exc.__context__, imaplib.IMAP4.abort):  # imapclient wraps a dropped connection as LoginError
                raise ImapConnectionError(
                    f"{_where(mailbox)} dropped the connection while logging in {mailbox.username} ({text}): "
                    "not a rejected password; will retry",
                    orig=None,
                ) from None
            if any(marker in text.upper() for marker in _TRANSIENT_LOGIN):
                raise ImapConnectionError(
                    f"{_where(mailbox)} cannot log in {mailbox.username} right now ({text}): transient, will retry", orig=None
                ) from None
            retry = auth.after_rejection(settings, mailbox, creds)
            if retry is None:
                raise AuthError(
                    f"login rejected by {mailbox.host} for user {mailbox.username} ({text}): {creds.on_rejection}", orig=None
                ) from None
            creds = retry
        except Exception as exc:
            raise map_error(exc, mailbox, "logging in", settings.read_timeout) from None


@contextlib.contextmanager
def connect(settings: Settings, mailbox: Mailbox, deadline: float | None = None) -> Iterator[Session]:
    """A logged-in :class:`Session` to ``mailbox``'s server, logged out on exit.

    Connecting through reading the capabilities after login finishes within
    MAILQ_CONNECT_TIMEOUT; nothing is waited for after ``deadline``
    (``time.monotonic()``; default: one poll's budget plus a read timeout from now).
    Credentials come first: a token refresh (or a grant that needs re-authorizing)
    never keeps an unauthenticated connection waiting on the server.
    """
    creds = auth.credentials(settings, mailbox)
    client = _open_client(settings, mailbox, new_wire(settings, mailbox, deadline))
    try:
        _login(client, settings, mailbox, creds)
    except BaseException:
        _shutdown(client)
        raise
    session = Session(client, mailbox, settings)
    try:
        session.refresh_capabilities()
        session.wire.connected()
        yield session
    finally:
        session.close()


@dataclass
class Probe:
    """What ``mailq mailbox test`` shows: the server works and the credentials are good."""

    capabilities: list[str]
    folders: list[str]


def probe(settings: Settings, mailbox: Mailbox) -> Probe:
    """Connect, log in, list capabilities and folders; raises the mailq error that explains a failure."""
    with connect(settings, mailbox) as session:
        return Probe(sorted(session.capabilities), session.list_folders())


__all__ = ["Client", "ImapError", "Probe", "Session", "connect", "map_error", "new_wire", "probe", "ssl_context"]
