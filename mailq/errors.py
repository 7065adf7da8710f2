"""mailq's error classes.

Callers (CLI, console, health tracking) catch these only; library errors are
wrapped with the original kept on ``.orig`` so nothing is lost for debugging.
Every message says what happened and what to do, in one line.
"""

from __future__ import annotations


class MailqError(Exception):
    """Base class of every error mailq raises on purpose."""

    def __init__(self, message: str, *, orig: BaseException | None = None):
        super().__init__(message)
        self.orig = orig

    @property
    def kind(self) -> str:
        """Short stable name stored in poll runs and shown by the console."""
        return _KINDS.get(type(self), type(self).__name__)


class ConfigError(MailqError):
    """Raised when a setting is missing or invalid; the message names the setting."""


class UsageError(MailqError):
    """Raised when a command is called wrongly (the CLI exits 2)."""


class NotFoundError(MailqError):
    """Raised when a mailbox, message or job named by the operator does not exist."""


class DatabaseError(MailqError):
    """Raised when the database cannot be reached, is locked too long, or is not upgraded."""


class SecretKeyError(MailqError):
    """Raised when the secret key is missing, malformed, or does not decrypt a stored secret."""


class QueueError(MailqError):
    """Raised when Redis cannot be reached or a job operation fails."""


class StorageError(MailqError):
    """Raised when a blob cannot be written, read or deleted (disk full, permissions, S3 unreachable or refusing)."""


class DispatchError(MailqError):
    """Raised when the hook or webhook failed for some messages of a batch (RQ retries the job)."""


class InvalidMailbox(UsageError):
    """Raised when a mailbox definition is invalid (names the field and the reason)."""


class InvalidApp(UsageError):
    """Raised when an OAuth app definition is invalid (names the flag and the reason)."""


class ConsentError(UsageError):
    """Raised when the user refused, the consent timed out, or the server gave no refresh token."""


class LockLost(MailqError):
    """Raised inside a poll when another poll took over its mailbox (its claim expired meanwhile)."""


class ImapError(MailqError):
    """Base class of failures talking to an IMAP server."""


class AuthError(ImapError):
    """Raised when the server rejects the credentials: no retry until they change."""


class ImapConnectionError(ImapError):
    """Raised on DNS failure, refused or reset connections: transient, retried with backoff."""


class ImapTimeoutError(ImapError):
    """Raised when connecting or reading takes longer than the configured timeout."""


class TLSError(ImapError):
    """Raised when the TLS handshake or certificate verification fails."""


class ProtocolError(ImapError):
    """Raised when the server answers NO/BAD/BYE or something unparseable."""


class ResponseRefusedError(ImapConnectionError):
    """Raised when a server's answer is over a limit (a literal, a line, a whole answer): refused unread, connection closed.

    ``uid`` names the message whose literal was refused, when it is known: that
    message is then recorded as skipped, so the next poll moves past it.
    """

    def __init__(self, message: str, *, uid: int | None = None, orig: BaseException | None = None):
        super().__init__(message, orig=orig)
        self.uid = uid


class GrantRevokedError(AuthError):
    """Raised when the authorization server refuses a mailbox's OAuth2 grant (invalid_grant): re-authorize."""


class OAuthClientError(AuthError):
    """Raised when the authorization server refuses the OAuth app itself (wrong secret, unauthorized client)."""


class TokenEndpointError(MailqError):
    """Raised when the token endpoint is down, slow or answers garbage: transient, retried with backoff."""


class NotStoredError(NotFoundError):
    """Raised when a message's row exists but its bytes were never stored (skipped as oversize)."""


_KINDS = {
    GrantRevokedError: "oauth_grant",
    OAuthClientError: "oauth_client",
    TokenEndpointError: "token_endpoint",
    AuthError: "auth",
    ImapConnectionError: "connection",
    ImapTimeoutError: "timeout",
    TLSError: "tls",
    ProtocolError: "protocol",
    ResponseRefusedError: "refused",
    DatabaseError: "database",
    QueueError: "redis",
    ConfigError: "config",
    UsageError: "usage",
    NotFoundError: "not_found",
    SecretKeyError: "secret_key",
    StorageError: "storage",
    DispatchError: "dispatch",
    InvalidMailbox: "invalid_mailbox",
    InvalidApp: "invalid_oauth_app",
    ConsentError: "consent",
    NotStoredError: "not_stored",
    LockLost: "lock_lost",
}
