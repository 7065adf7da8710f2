"""The data model. The database is the source of truth; Redis only mirrors schedules.

Timestamps are naive UTC. Text that came from mail (subjects, addresses, file
names) is stored as decoded, literally; it is data, never markup or a path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import peewee as pw

from .db import database
from .states import PAUSED, Outcome, State

STATES = tuple(State)
SECURITY = ("ssl", "starttls", "plain")
PRIORITIES = ("high", "normal")
AUTH_KINDS = ("password", "oauth2")
OAUTH_GRANTS = ("refresh_token", "client_credentials", "service_account")
PUSH_MODES = ("auto", "on", "off")
"""auto: hold an IDLE connection where the server offers IDLE; on: the same, and say so when it cannot; off: poll only."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class JSONListField(pw.TextField):
    """A list of strings stored as JSON text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value):
        return None if value is None else json.dumps(list(value))

    def python_value(self, value):
        return [] if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class OAuthApp(BaseModel):
    """One registration with an OAuth provider (Google, Microsoft, any standard server); mailboxes sign in through it."""

    name = pw.CharField(max_length=200, unique=True)
    provider = pw.CharField(max_length=16)  # google | microsoft | generic
    client_id = pw.TextField()
    client_secret = pw.TextField(null=True)  # Fernet token; public clients have none
    tenant = pw.CharField(max_length=200, null=True)
    token_url = pw.TextField()
    auth_url = pw.TextField(null=True)
    device_url = pw.TextField(null=True)
    scopes = JSONListField(default=list)
    sasl = pw.CharField(max_length=16, default="xoauth2")  # xoauth2 | oauthbearer
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "oauth_app"


class Mailbox(BaseModel):
    name = pw.CharField(max_length=200, unique=True)
    host = pw.CharField(max_length=255)
    port = pw.IntegerField()
    security = pw.CharField(max_length=10, default="ssl")
    username = pw.CharField(max_length=320)
    secret = pw.TextField()  # Fernet token, see crypto.py; never printed. The password, or for
    # OAuth2 the long-lived grant: refresh token | service-account key JSON | "" (client credentials)
    auth = pw.CharField(max_length=16, default="password")  # AUTH_KINDS
    oauth_app = pw.ForeignKeyField(OAuthApp, null=True, backref="mailboxes", on_delete="RESTRICT")
    oauth_grant = pw.CharField(max_length=24, null=True)  # OAUTH_GRANTS
    ca_file = pw.TextField(null=True)
    folders = JSONListField(default=lambda: ["INBOX"])
    interval = pw.IntegerField(default=60)
    priority = pw.CharField(max_length=10, default="normal")
    initial_sync = pw.CharField(max_length=32, default="all")  # all | new | since:YYYY-MM-DD
    push = pw.CharField(max_length=8, default="auto")  # auto | on | off (PUSH_MODES)
    paused = pw.BooleanField(default=False)
    state = pw.CharField(max_length=16, default=State.OK, index=True)
    consecutive_failures = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True)
    last_poll_at = pw.DateTimeField(null=True)
    last_success_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    last_error_class = pw.CharField(max_length=32, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "mailbox"

    @property
    def display_state(self) -> str:
        return PAUSED if self.paused else self.state

    # The one "enabled" rule, in Python and in SQL (tests/test_states.py checks they agree).
    @property
    def enabled(self) -> bool:
        """Whether it should have a recurring poll: not paused and not parked on bad credentials."""
        return not self.paused and self.state != State.AUTH_ERROR

    @classmethod
    def enabled_clause(cls) -> pw.Expression:
        """``enabled`` as a WHERE clause (peewee builds SQL from ``==``, hence no ``not``)."""
        return (cls.paused == False) & (cls.state != State.AUTH_ERROR)  # noqa: E712

    def is_due(self, now: datetime | None = None) -> bool:
        """Whether a poll should log in now: enabled, and not backing off."""
        return self.enabled and (self.next_attempt_at is None or self.next_attempt_at <= (now or utcnow()))


class OAuthToken(BaseModel):
    """A mailbox's cached access token (encrypted) and the outcome of its last refresh; never in Redis."""

    mailbox = pw.ForeignKeyField(Mailbox, primary_key=True, backref="oauth_token", on_delete="CASCADE")
    access_token = pw.TextField(null=True)  # Fernet token
    expires_at = pw.DateTimeField(null=True)
    refreshed_at = pw.DateTimeField(null=True)
    last_attempt_at = pw.DateTimeField(null=True)
    last_outcome = pw.CharField(max_length=24, null=True)  # ok | revoked | transient | client
    last_error = pw.TextField(null=True)

    class Meta:
        table_name = "oauth_token"


class FolderState(BaseModel):
    mailbox = pw.ForeignKeyField(Mailbox, backref="folder_states", on_delete="CASCADE")
    name = pw.TextField()
    uidvalidity = pw.BigIntegerField(null=True)
    last_uid = pw.BigIntegerField(default=0)
    uidnext = pw.BigIntegerField(null=True)
    highestmodseq = pw.BigIntegerField(null=True)
    last_synced_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "folder_state"
        indexes = ((("mailbox", "name"), True),)


class Message(BaseModel):
    mailbox = pw.ForeignKeyField(Mailbox, backref="messages", on_delete="CASCADE")
    folder = pw.TextField()
    uidvalidity = pw.BigIntegerField()
    uid = pw.BigIntegerField()
    message_id = pw.TextField(null=True)
    subject = pw.TextField(null=True)
    from_addr = pw.TextField(null=True, column_name="from_addr")
    to_addrs = pw.TextField(null=True)
    cc_addrs = pw.TextField(null=True)
    date = pw.DateTimeField(null=True)
    in_reply_to = pw.TextField(null=True)
    references = pw.TextField(null=True, column_name="references_hdr")
    preview = pw.TextField(null=True)
    size = pw.BigIntegerField(default=0)
    sha256 = pw.CharField(max_length=64, null=True, index=True)  # null when skipped
    skipped_reason = pw.TextField(null=True)
    parse_defects = pw.TextField(null=True)
    dispatched_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "message"
        indexes = (
            (("mailbox", "folder", "uidvalidity", "uid"), True),
            (("mailbox", "created_at"), False),
            (("created_at",), False),
            (("dispatched_at",), False),
            (("mailbox", "message_id"), False),
        )


class Attachment(BaseModel):
    message = pw.ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    filename = pw.TextField(null=True)  # for display only, never a path
    content_type = pw.TextField()
    size = pw.BigIntegerField(default=0)
    sha256 = pw.CharField(max_length=64, index=True)

    class Meta:
        table_name = "attachment"


class PollRun(BaseModel):
    mailbox = pw.ForeignKeyField(Mailbox, backref="poll_runs", on_delete="CASCADE")
    started_at = pw.DateTimeField(default=utcnow)
    finished_at = pw.DateTimeField(null=True)
    outcome = pw.CharField(max_length=16, default=Outcome.RUNNING)
    new_count = pw.IntegerField(default=0)
    skipped_count = pw.IntegerField(default=0)
    folders_checked = pw.IntegerField(default=0)
    error_class = pw.CharField(max_length=32, null=True)
    error_text = pw.TextField(null=True)
    worker = pw.CharField(max_length=200, null=True)

    class Meta:
        table_name = "poll_run"
        indexes = (
            (("mailbox", "started_at"), False),
            (("started_at",), False),
        )


ALL_MODELS = [OAuthApp, Mailbox, OAuthToken, FolderState, Message, Attachment, PollRun]
