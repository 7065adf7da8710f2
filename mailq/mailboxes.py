"""Mailbox records: validation, add/update, CSV import, lookup, pause/resume and removal.

The CLI and the console call these; they never print. Passwords arrive as plain
text only here and leave encrypted.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from . import crypto, removal
from .config import Settings
from .db import database, errors_as_mailq
from .errors import InvalidMailbox, MailqError, NotFoundError, UsageError
from .models import AUTH_KINDS, OAUTH_GRANTS, PRIORITIES, PUSH_MODES, SECURITY, Mailbox, OAuthApp, OAuthToken, utcnow
from .oauth import providers, tokens
from .states import State

CSV_COLUMNS = ["name", "host", "port", "security", "username", "password", "folders", "interval", "priority", "auth", "oauth_app", "push"]
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "plain": 143}
_NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,199}$")


@dataclass
class MailboxSpec:
    """A validated mailbox definition, before it is stored."""

    name: str
    host: str
    port: int
    security: str
    username: str
    password: str
    folders: list[str] = field(default_factory=lambda: ["INBOX"])
    interval: int = 60
    priority: str = "normal"
    initial_sync: str = "all"
    ca_file: str | None = None
    auth: str = "password"
    oauth_app: OAuthApp | None = None
    # OAuth2 grant; ``password`` then holds its secret: refresh_token (the token, "" until
    # authorized) | client_credentials ("") | service_account (the key file's JSON)
    oauth_grant: str | None = None
    push: str = "auto"


def _check_oauth(auth: str | None, oauth_app: OAuthApp | None, oauth_grant: str | None, secret: str) -> tuple[str, str | None]:
    """(auth, grant) after checking the OAuth2 part of a definition."""
    auth = (auth or ("oauth2" if oauth_app else "password")).strip().lower()
    if auth not in AUTH_KINDS:
        raise InvalidMailbox(f"auth: {auth!r} is not one of {', '.join(AUTH_KINDS)}")
    if auth == "password":
        if oauth_app is not None:
            raise InvalidMailbox("auth: password mailboxes take no OAuth app")
        if not secret:
            raise InvalidMailbox("password: must not be empty")
        return auth, None
    if oauth_app is None:
        raise InvalidMailbox("oauth_app: an OAuth2 mailbox needs an app (`mailq oauth app add`)")
    grant = oauth_grant or "refresh_token"
    if grant not in OAUTH_GRANTS:
        raise InvalidMailbox(f"grant: {grant!r} is not one of {', '.join(OAUTH_GRANTS)}")
    if grant == "client_credentials":
        if not oauth_app.client_secret:
            raise InvalidMailbox(f"--client-credentials: OAuth app {oauth_app.name!r} has no client secret; app-only access needs one")
        if oauth_app.provider == "microsoft" and (oauth_app.tenant or "common") in ("common", "organizations", "consumers"):
            raise InvalidMailbox(f"--client-credentials: OAuth app {oauth_app.name!r} needs its tenant id (--tenant) for app-only access")
    if grant == "service_account":
        from .oauth.client import parse_service_account  # authlib loads only for OAuth2 work (start-up time)

        parse_service_account(secret)
    return auth, grant


def validate(
    *,
    name: str,
    host: str | None = None,
    port: Any = None,
    security: str | None = None,
    username: str,
    password: str = "",
    folders: Iterable[str] | str | None = None,
    interval: Any = None,
    priority: str | None = None,
    initial_sync: str | None = None,
    ca_file: str | None = None,
    default_interval: int = 60,
    auth: str | None = None,
    oauth_app: OAuthApp | None = None,
    oauth_grant: str | None = None,
    push: str | None = None,
) -> MailboxSpec:
    """Check every field and return a spec; the error names the first bad field.

    OAuth2 mailboxes of a known provider default their host to the provider's IMAP server.
    """
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise InvalidMailbox("name: must be 1-200 printable characters and not start with a space")
    host = (host or "").strip()
    if not host and oauth_app is not None:
        host = providers.get(oauth_app.provider).imap_host
    if not host or any(c.isspace() for c in host):
        raise InvalidMailbox(f"host: {host!r} is not a host name")
    security = (security or "ssl").strip().lower()
    if security not in SECURITY:
        raise InvalidMailbox(f"security: {security!r} is not one of {', '.join(SECURITY)}")
    if port in (None, ""):
        port = DEFAULT_PORTS[security]
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise InvalidMailbox(f"port: {port!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidMailbox(f"port: {port} is outside 1-65535")
    username = (username or "").strip()
    if not username:
        raise InvalidMailbox("username: must not be empty")
    auth, oauth_grant = _check_oauth(auth, oauth_app, oauth_grant, password or "")
    if isinstance(folders, str):
        folders = [f for f in re.split(r"[;|]", folders)]
    folders = [f.strip() for f in (folders or []) if f and f.strip()] or ["INBOX"]
    if interval in (None, ""):
        interval = default_interval
    try:
        interval = int(interval)
    except (TypeError, ValueError):
        raise InvalidMailbox(f"interval: {interval!r} is not a number of seconds") from None
    if interval < 1:
        raise InvalidMailbox(f"interval: must be at least 1 second, got {interval}")
    priority = (priority or "normal").strip().lower()
    if priority not in PRIORITIES:
        raise InvalidMailbox(f"priority: {priority!r} is not one of {', '.join(PRIORITIES)}")
    initial_sync = (initial_sync or "all").strip().lower()
    if initial_sync.startswith("since:"):
        try:
            date.fromisoformat(initial_sync[6:])
        except ValueError:
            raise InvalidMailbox(f"initial sync: {initial_sync!r} needs a date as since:YYYY-MM-DD") from None
    elif initial_sync not in ("all", "new"):
        raise InvalidMailbox(f"initial sync: {initial_sync!r} is not all, new or since:YYYY-MM-DD")
    push = (push or "auto").strip().lower()
    if push not in PUSH_MODES:
        raise InvalidMailbox(f"push: {push!r} is not one of {', '.join(PUSH_MODES)}")
    return MailboxSpec(
        name,
        host,
        port,
        security,
        username,
        password or "",
        folders,
        interval,
        priority,
        initial_sync,
        ca_file or None,
        auth,
        oauth_app,
        oauth_grant,
        push,
    )


def get(ref: str | int) -> Mailbox:
    """A mailbox by id or by name."""
    with errors_as_mailq():
        query = Mailbox.select()
        ref_s = str(ref)
        found = None
        if ref_s.isdigit():
            found = query.where(Mailbox.id == int(ref_s)).first()
        if found is None:
            found = query.where(Mailbox.name == ref_s).first()
    if found is None:
        raise NotFoundError(f"no mailbox with id or name {ref_s!r}: see `mailq mailbox list`")
    return found


def save(settings: Settings, spec: MailboxSpec) -> tuple[Mailbox, bool]:
    """Insert or update (by name); returns (mailbox, created).

    A changed password clears ``auth_error``: new credentials deserve one new attempt.
    An OAuth2 mailbox without a refresh token yet waits in ``auth_error`` for
    ``mailq mailbox authorize``; updating it without a new token keeps the stored one.
    """
    with errors_as_mailq(), database.atomic():
        existing = Mailbox.select().where(Mailbox.name == spec.name).first()
        if existing is None:
            unauthorized = spec.auth == "oauth2" and spec.oauth_grant == "refresh_token" and not spec.password
            mailbox = Mailbox.create(
                auth=spec.auth,
                oauth_app=spec.oauth_app.id if spec.oauth_app else None,
                oauth_grant=spec.oauth_grant,
                state="auth_error" if unauthorized else "ok",
                last_error=f"not authorized yet: run `mailq mailbox authorize {spec.name}`" if unauthorized else None,
                last_error_class="oauth_grant" if unauthorized else None,
                name=spec.name,
                host=spec.host,
                port=spec.port,
                security=spec.security,
                username=spec.username,
                secret=crypto.encrypt(settings, spec.password),
                folders=spec.folders,
                interval=spec.interval,
                priority=spec.priority,
                initial_sync=spec.initial_sync,
                ca_file=spec.ca_file,
                push=spec.push,
            )
            return mailbox, True
        keep_grant = spec.auth == "oauth2" and spec.oauth_grant == "refresh_token" and not spec.password
        if keep_grant and existing.auth == "oauth2" and existing.oauth_grant == "refresh_token":
            spec.password = crypto.decrypt(settings, existing.secret, f"the OAuth2 grant of mailbox {existing.name!r}")
        credentials_changed = (
            existing.host != spec.host
            or existing.username != spec.username
            or existing.auth != spec.auth
            or existing.oauth_app_id != (spec.oauth_app.id if spec.oauth_app else None)
            or existing.oauth_grant != spec.oauth_grant
            or crypto.decrypt(settings, existing.secret, f"the password of mailbox {existing.name!r}") != spec.password
        )
        existing.host, existing.port, existing.security = spec.host, spec.port, spec.security
        existing.username, existing.folders = spec.username, spec.folders
        existing.interval, existing.priority = spec.interval, spec.priority
        existing.initial_sync, existing.ca_file = spec.initial_sync, spec.ca_file
        existing.push = spec.push
        if credentials_changed:
            existing.secret = crypto.encrypt(settings, spec.password)
            existing.auth, existing.oauth_grant = spec.auth, spec.oauth_grant
            existing.oauth_app = spec.oauth_app.id if spec.oauth_app else None
            OAuthToken.delete().where(OAuthToken.mailbox == existing.id).execute()
            if existing.state == State.AUTH_ERROR and (spec.password or spec.oauth_grant in ("client_credentials", "service_account")):
                existing.state, existing.consecutive_failures, existing.next_attempt_at = State.OK, 0, None
        existing.updated_at = utcnow()
        existing.save()
        return existing, False


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def read_csv(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[tuple[int, str]]]:
    """Rows of a mailbox CSV with their line numbers; a header row is optional."""
    rows, errors = [], []
    reader = csv.reader(io.StringIO(text))
    header = None
    for record in reader:
        line = reader.line_num
        if not record or all(not c.strip() for c in record) or record[0].lstrip().startswith("#"):
            continue
        if header is None and [c.strip().lower() for c in record[:2]] == ["name", "host"]:
            header = [c.strip().lower() for c in record]
            unknown = set(header) - set(CSV_COLUMNS)
            if unknown:
                errors.append((line, f"unknown column(s) {', '.join(sorted(unknown))}"))
                return [], errors
            continue
        columns = header or CSV_COLUMNS
        if len(record) < 6 or len(record) > len(columns):
            errors.append((line, f"expected 6 to {len(columns)} fields ({','.join(columns)}), got {len(record)}"))
            continue
        rows.append((line, dict(zip(columns, record))))
    return rows, errors


def import_csv(settings: Settings, text: str, on_row: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import or update mailboxes from CSV text; good rows land even when others are bad."""
    report = ImportReport()
    rows, report.errors = read_csv(text)
    seen: dict[str, int] = {}
    for done, (line, row) in enumerate(rows, 1):
        try:
            spec = validate(
                name=row.get("name", ""),
                host=row.get("host", ""),
                port=row.get("port"),
                security=row.get("security"),
                username=row.get("username", ""),
                password=row.get("password", ""),
                folders=row.get("folders"),
                interval=row.get("interval"),
                priority=row.get("priority"),
                default_interval=settings.poll_interval,
                auth=row.get("auth") or None,
                oauth_app=_csv_app(row.get("oauth_app")),
                push=row.get("push"),
            )
            if spec.name in seen:
                raise InvalidMailbox(f"name: {spec.name!r} already appears on line {seen[spec.name]}")
            seen[spec.name] = line
            _, created = save(settings, spec)
            if created:
                report.created += 1
            else:
                report.updated += 1
        except MailqError as exc:
            if not isinstance(exc, UsageError):
                raise
            report.errors.append((line, str(exc)))
        if on_row:
            on_row(done, len(rows))
    report.errors.sort()
    return report


def _csv_app(name: str | None) -> OAuthApp | None:
    """The OAuth app a CSV row names (its refresh token, if any, is in the password column)."""
    name = (name or "").strip()
    if not name:
        return None
    app = OAuthApp.get_or_none(OAuthApp.name == name)
    if app is None:
        raise InvalidMailbox(f"oauth_app: no OAuth app named {name!r} (see `mailq oauth app list`)")
    return app


def set_paused(mailbox: Mailbox, paused: bool) -> Mailbox:
    """Pause or resume. Resuming also clears ``auth_error`` and backoff: the operator vouches for it."""
    with errors_as_mailq():
        mailbox.paused = paused
        if not paused:
            mailbox.state, mailbox.consecutive_failures, mailbox.next_attempt_at = State.OK, 0, None
        mailbox.updated_at = utcnow()
        mailbox.save()
    return mailbox


def remove(settings: Settings, mailbox: Mailbox) -> dict[str, int]:
    """Delete a mailbox and everything that hangs off it; safe to re-run if interrupted.

    Order matters: stop new polls first (schedule and queued polls), then park the
    row so nothing ingests into it, then blobs only this mailbox references, then
    rows, and the mailbox row last so a re-run finds it again.
    """
    return removal.remove_mailbox(settings, mailbox)


def to_dict(mailbox: Mailbox, detail: bool = False) -> dict[str, Any]:
    """The stable JSON shape (no secret, encrypted or not)."""
    data = {
        "id": mailbox.id,
        "name": mailbox.name,
        "host": mailbox.host,
        "port": mailbox.port,
        "security": mailbox.security,
        "username": mailbox.username,
        "folders": list(mailbox.folders),
        "interval": mailbox.interval,
        "priority": mailbox.priority,
        "paused": bool(mailbox.paused),
        "state": mailbox.display_state,
        "initial_sync": mailbox.initial_sync,
        "push": mailbox.push,
        "auth": mailbox.auth,
    }
    if mailbox.auth == "oauth2":
        app = OAuthApp.get_or_none(OAuthApp.id == mailbox.oauth_app_id)
        data.update(oauth_app=app.name if app else None, oauth_grant=mailbox.oauth_grant, **tokens.status(mailbox))
    if detail:
        iso = lambda d: d.isoformat() + "Z" if d else None  # noqa: E731
        data.update(
            health=mailbox.state,
            consecutive_failures=mailbox.consecutive_failures,
            next_attempt_at=iso(mailbox.next_attempt_at),
            last_poll_at=iso(mailbox.last_poll_at),
            last_success_at=iso(mailbox.last_success_at),
            last_error=mailbox.last_error,
            last_error_class=mailbox.last_error_class,
            ca_file=mailbox.ca_file,
            created_at=iso(mailbox.created_at),
        )
    return data
