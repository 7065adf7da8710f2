"""``mailq mailbox add|import|list|show|remove|pause|resume|test``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .. import imap, mailboxes, ops
from ..db import errors_as_mailq
from ..errors import QueueError, UsageError
from ..models import Mailbox
from ..text import literal
from .common import add_json, err, fields, fit, open_db, out, print_json


def register(sub) -> None:
    p = sub.add_parser("mailbox", help="manage mailboxes")
    msub = p.add_subparsers(dest="mailbox_command", metavar="ACTION")
    msub.required = True

    add = msub.add_parser("add", help="add a mailbox (or update the one with that name)")
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int)
    add.add_argument("--security", choices=["ssl", "starttls", "plain"], default="ssl")
    add.add_argument("--username", required=True)
    pw = add.add_mutually_exclusive_group(required=True)
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
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

    t = msub.add_parser("test", help="connect and log in; print capabilities and folders")
    t.add_argument("ref", metavar="ID|NAME")
    add_json(t)
    t.set_defaults(handler=test_mailbox)


def _read_password(args) -> str:
    if args.password_stdin:
        data = sys.stdin.readline() if sys.stdin.isatty() else sys.stdin.read()
        password = data.rstrip("\r\n")
    else:
        if args.password_env not in os.environ:
            raise UsageError(f"--password-env: {args.password_env} is not set in the environment")
        password = os.environ[args.password_env]
    if not password:
        raise UsageError("the password is empty")
    return password


def add_mailbox(args) -> int:
    settings = open_db(args)
    spec = mailboxes.validate(
        name=args.name,
        host=args.host,
        port=args.port,
        security=args.security,
        username=args.username,
        password=_read_password(args),
        folders=args.folders,
        interval=args.interval,
        priority=args.priority,
        initial_sync=args.initial_sync,
        ca_file=args.ca_file,
        default_interval=settings.poll_interval,
    )
    mailbox, created = mailboxes.save(settings, spec)
    _after_change(settings, mailbox)
    out.print(Text(f"{'added' if created else 'updated'} mailbox {mailbox.id} ({literal(mailbox.name)})"))
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
    table = Table("id", "name", "state", "host", "user", "folders", "interval", "priority", box=None)
    for m in rows:
        table.add_row(
            str(m.id),
            Text(literal(m.name)),
            m.display_state,
            Text(f"{literal(m.host)}:{m.port} ({m.security})"),
            Text(literal(m.username)),
            Text(literal(", ".join(m.folders))),
            f"{m.interval}s",
            m.priority,
        )
    out.print(
        fit(table, drop=("priority", "folders", "interval", "user"))
        if rows
        else "no mailboxes yet: add one with `mailq mailbox add` or `mailq mailbox import`"
    )
    return 0


def show_mailbox(args) -> int:
    open_db(args)
    mailbox = mailboxes.get(args.ref)
    data = mailboxes.to_dict(mailbox, detail=True)
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
        print_json({"id": mailbox.id, "name": mailbox.name, "ok": True, "capabilities": result.capabilities, "folders": result.folders})
        return 0
    out.print(Text(f"login ok: {literal(mailbox.username)} at {literal(mailbox.host)}:{mailbox.port} ({mailbox.security})"))
    out.print(Text("capabilities: " + " ".join(literal(c) for c in result.capabilities)))
    out.print(Text("folders: " + ", ".join(literal(f) for f in result.folders)))
    return 0


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
