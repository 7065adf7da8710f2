"""``mailq mailbox add|import|list|show|remove|pause|resume|test``."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .. import imap, mailboxes, ops
from ..config import get
from ..db import errors_as_mailq
from ..errors import QueueError, UsageError
from ..models import Mailbox
from ..oauth import apps, tokens
from ..ops.mailboxes import push_states
from ..text import literal
from .common import add_json, err, fields, fit, open_db, out, print_json, read_secret


def register(sub) -> None:
    p = sub.add_parser("mailbox", help="manage mailboxes")
    msub = p.add_subparsers(dest="mailbox_command", metavar="ACTION")
    msub.required = True

    add = msub.add_parser("add", help="add a mailbox (or update the one with that name)")
    add.add_argument("name")
    add.add_argument("--host", help="IMAP server (OAuth2 with google/microsoft: the provider's)")
    add.add_argument("--port", type=int)
    add.add_argument("--security", choices=["ssl", "starttls", "plain"], default="ssl")
    add.add_argument("--username", required=True)
    pw = add.add_mutually_exclusive_group()
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    pw.add_argument("--refresh-token-stdin", action="store_true", help="OAuth2: read a refresh token from standard input")
    pw.add_argument("--refresh-token-env", metavar="VAR", help="OAuth2: read a refresh token from this environment variable")
    pw.add_argument("--client-credentials", action="store_true", help="OAuth2 app-only access (Microsoft IMAP.AccessAsApp)")
    pw.add_argument("--service-account-file", metavar="FILE", help="OAuth2: Google service-account key (domain-wide delegation)")
    add.add_argument("--oauth-app", metavar="APP", help="sign in with OAuth2 through this app (see `mailq oauth app add`)")
    add.add_argument("--folder", action="append", dest="folders", metavar="FOLDER", help="folder to poll (repeatable; default INBOX)")
    add.add_argument("--interval", type=int, help="seconds between polls (default MAILQ_POLL_INTERVAL)")
    add.add_argument("--priority", choices=["high", "normal"], default="normal")
    add.add_argument(
        "--initial-sync",
        default="all",
        metavar="all|new|since:YYYY-MM-DD",
        help="what the first poll takes: all history, only mail arriving from now on, or mail since a date",
    )
    add.add_argument("--ca-file", help="CA bundle to verify this server's certificate (self-signed servers)")
    add.add_argument(
        "--push",
        choices=["auto", "on", "off"],
        default="auto",
        help="hold an IDLE connection (mailq idler) so new mail is fetched within seconds; auto: where the server offers IDLE",
    )
    add.set_defaults(handler=add_mailbox)

    imp = msub.add_parser("import", help="import or update mailboxes from a CSV file")
    imp.add_argument("file", metavar="FILE.csv")
    imp.set_defaults(handler=import_mailboxes)

    ls = msub.add_parser("list", help="list mailboxes")
    add_json(ls)
    ls.set_defaults(handler=list_mailboxes)

    show = msub.add_parser("show", help="one mailbox in detail")
    show.add_argument("ref", metavar="ID|NAME")
    add_json(show)
    show.set_defaults(handler=show_mailbox)

    rm = msub.add_parser("remove", help="delete a mailbox, its schedule, messages and unshared blobs")
    rm.add_argument("ref", metavar="ID|NAME")
    rm.add_argument("--yes", action="store_true", help="confirm the deletion")
    rm.set_defaults(handler=remove_mailbox)

    for action, helptext in (("pause", "stop polling a mailbox"), ("resume", "resume polling (also clears auth_error)")):
        a = msub.add_parser(action, help=helptext)
        a.add_argument("ref", metavar="ID|NAME")
        a.set_defaults(handler=pause_mailbox if action == "pause" else resume_mailbox)

    az = msub.add_parser("authorize", help="OAuth2 consent for a mailbox: browser (loopback redirect + PKCE) or device code")
    az.add_argument("ref", metavar="ID|NAME")
    flow = az.add_mutually_exclusive_group()
    flow.add_argument("--device", action="store_true", help="device-code flow (Microsoft's default)")
    flow.add_argument("--browser", action="store_true", help="browser flow with a loopback redirect (Google's default)")
    az.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    az.add_argument("--timeout", type=float, default=300, help="seconds to wait for the consent (default 300)")
    az.set_defaults(handler=authorize_mailbox)

    t = msub.add_parser("test", help="connect and log in; print capabilities and folders")
    t.add_argument("ref", metavar="ID|NAME")
    add_json(t)
    t.set_defaults(handler=test_mailbox)


def _read_credential(args) -> tuple[str, str | None]:
    """(secret, OAuth grant): a password, a refresh token, a service-account key or nothing (client credentials)."""
    if args.password_stdin or args.password_env:
        if args.oauth_app:
            raise UsageError(
                "--oauth-app signs in with OAuth2: give --refresh-token-*, --client-credentials or --service-account-file, not a password"
            )
        return read_secret(args.password_stdin, args.password_env, "--password-env", "password"), None
    if not args.oauth_app:
        if args.refresh_token_stdin or args.refresh_token_env or args.client_credentials or args.service_account_file:
            raise UsageError("OAuth2 credentials need --oauth-app APP")
        raise UsageError("give the password with --password-stdin or --password-env (or sign in with OAuth2: --oauth-app APP)")
    if args.refresh_token_stdin or args.refresh_token_env:
        return read_secret(args.refresh_token_stdin, args.refresh_token_env, "--refresh-token-env", "refresh token"), "refresh_token"
    if args.client_credentials:
        return "", "client_credentials"
    if args.service_account_file:
        try:
            return Path(args.service_account_file).read_text(), "service_account"
        except OSError as exc:
            raise UsageError(f"--service-account-file: cannot read {args.service_account_file}: {exc.strerror}") from None
    return "", "refresh_token"  # consent comes later: `mailq mailbox authorize NAME`


def add_mailbox(args) -> int:
    settings = open_db(args)
    secret, grant = _read_credential(args)
    app = None
    if args.oauth_app:
        app = apps.get(args.oauth_app)
    spec = mailboxes.validate(
        name=args.name,
        host=args.host,
        port=args.port,
        security=args.security,
        username=args.username,
        password=secret,
        auth="oauth2" if app else "password",
        oauth_app=app,
        oauth_grant=grant,
        folders=args.folders,
        interval=args.interval,
        priority=args.priority,
        initial_sync=args.initial_sync,
        ca_file=args.ca_file,
        default_interval=settings.poll_interval,
        push=args.push,
    )
    mailbox, created = mailboxes.save(settings, spec)
    _after_change(settings, mailbox)
    out.print(Text(f"{'added' if created else 'updated'} mailbox {mailbox.id} ({literal(mailbox.name)})"))
    if mailbox.state == "auth_error" and mailbox.auth == "oauth2":
        out.print(Text(f"next: sign it in with `mailq mailbox authorize {literal(mailbox.name)}`"))
    return 0


def import_mailboxes(args) -> int:
    settings = open_db(args)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("import", total=None)
        report = mailboxes.import_csv(settings, text, on_row=lambda done, total: progress.update(task, completed=done, total=total))
    for line, reason in report.errors:
        err.print(Text(f"{path}:{line}: {reason}"))
    _after_import(settings)
    out.print(f"imported {report.created} new, updated {report.updated}, rejected {len(report.errors)} row(s)")
    return 1 if report.errors and not (report.created or report.updated) else 0


def list_mailboxes(args) -> int:
    open_db(args)
    with errors_as_mailq():
        rows = list(Mailbox.select().order_by(Mailbox.id))
    if args.json:
        print_json([mailboxes.to_dict(m) for m in rows])
        return 0
    table = Table("id", "name", "state", "push", "host", "user", "auth", "folders", "interval", "priority", box=None)
    push = _push_states(rows)
    for m in rows:
        table.add_row(
            str(m.id),
            Text(literal(m.name)),
            m.display_state,
            push.get(m.id, ("?", ""))[0],
            Text(f"{literal(m.host)}:{m.port} ({m.security})"),
            Text(literal(m.username)),
            m.auth,
            Text(literal(", ".join(m.folders))),
            f"{m.interval}s",
            m.priority,
        )
    out.print(
        fit(table, drop=("priority", "folders", "interval", "auth", "user", "push"))
        if rows
        else "no mailboxes yet: add one with `mailq mailbox add` or `mailq mailbox import`"
    )
    return 0


def show_mailbox(args) -> int:
    open_db(args)
    mailbox = mailboxes.get(args.ref)
    data = mailboxes.to_dict(mailbox, detail=True)
    data["push_state"], data["push_status"] = _push_states([mailbox]).get(mailbox.id, ("unknown", "unknown: Redis is unreachable"))
    if args.json:
        print_json(data)
        return 0
    fields([(key, Text(literal(value if not isinstance(value, list) else ", ".join(value)))) for key, value in data.items()])
    return 0


def remove_mailbox(args) -> int:
    settings = open_db(args)
    mailbox = mailboxes.get(args.ref)
    if not args.yes:
        raise UsageError(f"this deletes mailbox {mailbox.id} ({mailbox.name}) with its messages and blobs: add --yes to confirm")
    counts = mailboxes.remove(settings, mailbox)
    out.print(
        Text(
            f"removed mailbox {mailbox.id} ({literal(mailbox.name)}): {counts['messages']} message(s), "
            f"{counts['attachments']} attachment row(s), {counts['blobs']} blob(s)"
        )
    )
    return 0


def pause_mailbox(args) -> int:
    settings = open_db(args)
    mailbox = mailboxes.get(args.ref)
    try:  # the database change stands with Redis down; the scheduler's next reconcile drops the schedule
        ops.pause(settings, mailbox.id)
    except QueueError as exc:
        err.print(Text(f"warning: {exc}; the scheduler drops the schedule at its next reconcile"))
    out.print(Text(f"paused mailbox {mailbox.id} ({literal(mailbox.name)})"))
    return 0


def resume_mailbox(args) -> int:
    settings = open_db(args)
    mailbox = mailboxes.get(args.ref)
    try:
        ops.resume(settings, mailbox.id)
    except QueueError as exc:
        err.print(Text(f"warning: {exc}; the scheduler adds the schedule at its next reconcile"))
    out.print(Text(f"resumed mailbox {mailbox.id} ({literal(mailbox.name)})"))
    return 0


def test_mailbox(args) -> int:
    settings = open_db(args)
    mailbox = mailboxes.get(args.ref)
    result = imap.probe(settings, mailbox)
    if args.json:
        data = {"id": mailbox.id, "name": mailbox.name, "ok": True, "auth": mailbox.auth}
        if mailbox.auth == "oauth2":
            data.update(tokens.status(mailbox))
        print_json({**data, "capabilities": result.capabilities, "folders": result.folders})
        return 0
    out.print(
        Text(f"login ok: {literal(mailbox.username)} at {literal(mailbox.host)}:{mailbox.port} ({mailbox.security}), auth {mailbox.auth}")
    )
    if mailbox.auth == "oauth2":
        state = tokens.status(mailbox)
        out.print(Text(f"token expires {state['token_expires_at'] or '-'}, last refresh {state['last_refresh_outcome'] or '-'}"))
    out.print(Text("capabilities: " + " ".join(literal(c) for c in result.capabilities)))
    out.print(Text("folders: " + ", ".join(literal(f) for f in result.folders)))
    return 0


def authorize_mailbox(args) -> int:
    settings = open_db(args)
    mailbox = mailboxes.get(args.ref)

    def say(line: str) -> None:
        out.print(Text(line))
        sys.stdout.flush()

    flow = "device" if args.device else "browser" if args.browser else None
    from ..oauth import consent  # authlib loads only for OAuth2 work (start-up time of every mailq process)

    consent.authorize(settings, mailbox, flow=flow, open_browser=not args.no_browser, timeout=args.timeout, say=say)
    _after_change(settings, mailboxes.get(mailbox.id))
    say(f"authorized mailbox {mailbox.id} ({literal(mailbox.name)}): polling resumes")
    return 0


def _push_states(rows: list[Mailbox]) -> dict[int, tuple[str, str]]:

    return push_states(get(), rows)


def _after_change(settings, mailbox: Mailbox) -> None:
    """Bring the mailbox's recurring poll in line with its row (new credentials after auth_error re-add it)."""
    try:
        ops.sync_mailbox(settings, mailbox.id)
    except QueueError as exc:
        err.print(Text(f"warning: {exc}; the scheduler schedules it at its next reconcile"))


def _after_import(settings) -> None:
    """Reconcile every recurring poll once after a bulk import (Redis down: a warning, the import stands)."""
    try:
        ops.resync(settings)
    except QueueError as exc:
        err.print(Text(f"warning: {exc}; the scheduler reconciles at its next run"))
