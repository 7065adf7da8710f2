"""``mailq messages list|show`` (metadata) and ``raw|attachment|export`` (the stored bytes).

Everything shown came from mail: it is rendered literally (``text.literal`` in
a rich ``Text``), never as markup, so a subject cannot style or hijack the terminal.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .. import api, export, mailboxes
from ..db import errors_as_mailq
from ..errors import MailqError, NotFoundError, UsageError
from ..models import Attachment, Message
from ..text import literal
from .common import add_json, err, fields, fit, open_db, out, print_json


def register(sub) -> None:
    p = sub.add_parser("messages", help="stored messages")
    msub = p.add_subparsers(dest="messages_command", metavar="ACTION")
    msub.required = True

    ls = msub.add_parser("list", help="the newest stored messages")
    ls.add_argument("--mailbox", metavar="ID|NAME", help="only this mailbox")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_json(ls)
    ls.set_defaults(handler=list_messages)

    show = msub.add_parser("show", help="one message with its attachments")
    show.add_argument("id", type=int)
    add_json(show)
    show.set_defaults(handler=show_message)

    raw = msub.add_parser("raw", help="the exact stored bytes of a message, to stdout or a file")
    raw.add_argument("id", type=int)
    raw.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    raw.set_defaults(handler=raw_message)

    att = msub.add_parser("attachment", help="an attachment's decoded bytes, to stdout or a file")
    att.add_argument("id", type=int, metavar="ATT_ID", help="attachment id (see `mailq messages show ID`)")
    att.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    att.set_defaults(handler=attachment_bytes)

    exp = msub.add_parser("export", help="stored messages as .eml files or one mbox file (resumable, exact bytes)")
    exp.add_argument("--mailbox", metavar="ID|NAME", help="only this mailbox")
    exp.add_argument("--since", metavar="YYYY-MM-DD", help="only messages dated on or after this day (UTC)")
    dest = exp.add_mutually_exclusive_group(required=True)
    dest.add_argument("--eml", metavar="DIR", help="one DIR/<id>.eml per message")
    dest.add_argument("--mbox", metavar="FILE", help="one mboxrd file (a rerun continues where the last one stopped)")
    exp.set_defaults(handler=export_messages)


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def to_dict(message: Message, attachments: list[Attachment], detail: bool = False) -> dict[str, Any]:
    """The stable JSON shape of a message."""
    data = {
        "id": message.id,
        "mailbox_id": message.mailbox_id,
        "folder": message.folder,
        "uid": message.uid,
        "uidvalidity": message.uidvalidity,
        "message_id": message.message_id,
        "subject": message.subject,
        "from": message.from_addr,
        "to": message.to_addrs,
        "date": _iso(message.date),
        "size": message.size,
        "sha256": message.sha256,
        "skipped_reason": message.skipped_reason,
        "attachments": [
            {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256} for a in attachments
        ],
        "created_at": _iso(message.created_at),
        "dispatched_at": _iso(message.dispatched_at),
    }
    if detail:
        data.update(
            cc=message.cc_addrs,
            in_reply_to=message.in_reply_to,
            references=message.references,
            preview=message.preview,
            parse_defects=json.loads(message.parse_defects) if message.parse_defects else [],
        )
    return data


def _attachments_of(ids: list[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {i: [] for i in ids}
    if ids:
        for att in Attachment.select().where(Attachment.message.in_(ids)).order_by(Attachment.id):
            found[att.message_id].append(att)
    return found


def list_messages(args) -> int:
    open_db(args)
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with errors_as_mailq():
        query = Message.select()
        if args.mailbox is not None:
            query = query.where(Message.mailbox == mailboxes.get(args.mailbox).id)
        messages = list(query.order_by(Message.id.desc()).limit(args.limit))
        attachments = _attachments_of([m.id for m in messages])
    if args.json:
        print_json([to_dict(m, attachments[m.id]) for m in messages])
        return 0
    if not messages:
        out.print("no messages stored yet: poll a mailbox with `mailq poll ID --inline`")
        return 0
    table = Table("id", "mailbox", "folder", "uid", "date", "from", "subject", "size", "att", box=None)
    for m in messages:
        table.add_row(
            str(m.id),
            str(m.mailbox_id),
            Text(literal(m.folder, 30)),
            str(m.uid),
            m.date.strftime("%Y-%m-%d %H:%M") if m.date else "",
            Text(literal(m.from_addr, 40)),
            Text(literal(m.subject or "(no subject)", 60)),
            "skipped" if m.skipped_reason else str(m.size),
            str(len(attachments[m.id])),
        )
    out.print(fit(table, drop=("uid", "att", "folder", "size", "mailbox")))
    return 0


def show_message(args) -> int:
    open_db(args)
    with errors_as_mailq():
        message = Message.get_or_none(Message.id == args.id)
        if message is None:
            raise NotFoundError(f"no message with id {args.id}: see `mailq messages list`")
        attachments = _attachments_of([message.id])[message.id]
    data = to_dict(message, attachments, detail=True)
    if args.json:
        print_json(data)
        return 0
    rows = [(key, Text(literal(value))) for key, value in data.items() if key not in ("attachments", "parse_defects")]
    for att in data["attachments"]:
        rows.append(
            ("attachment", Text(literal(f"{att['filename'] or '(unnamed)'}  {att['content_type']}  {att['size']} bytes  {att['sha256']}")))
        )
    rows += [("parse defect", Text(literal(defect))) for defect in data["parse_defects"]]
    fields(rows)
    return 0


def _write_bytes(data: bytes, output: str | None, what: str) -> None:
    """To FILE (atomically), or to stdout unless it is a terminal: mail may carry escape sequences."""
    if output:
        path = Path(output)
        tmp = path.with_name(f".{path.name}.part")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise MailqError(f"cannot write {output}: {exc.strerror or exc}: check the path and permissions", orig=exc) from None
        return
    if sys.stdout.isatty():
        raise UsageError(f"refusing to write {what} to a terminal (it may hold control sequences): redirect stdout or use -o FILE")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def raw_message(args) -> int:
    settings = open_db(args)
    _write_bytes(api.raw(args.id, settings), args.output, f"message {args.id}")
    return 0


def attachment_bytes(args) -> int:
    settings = open_db(args)
    _write_bytes(api.attachment_bytes(args.id, settings), args.output, f"attachment {args.id}")
    return 0


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise UsageError(f"--since: expected a day as YYYY-MM-DD, got {value!r}") from None


def export_messages(args) -> int:
    settings = open_db(args)
    since = _since(args.since)
    mailbox_id = mailboxes.get(args.mailbox).id if args.mailbox is not None else None
    total = export.count(mailbox_id, since)
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=not err.is_terminal) as bar:
        task = bar.add_task("export", total=total)

        def step(n: int) -> None:
            bar.advance(task, n)

        if args.eml:
            result = export.export_eml(settings, Path(args.eml), mailbox_id=mailbox_id, since=since, progress=step)
            where = args.eml
        else:
            result = export.export_mbox(settings, Path(args.mbox), mailbox_id=mailbox_id, since=since, progress=step)
            where = args.mbox
    note = f", {result.not_stored} not stored (oversize)" if result.not_stored else ""
    out.print(Text(f"exported {result.written} message(s), {result.bytes} bytes, to {where}; {result.skipped} already there{note}"))
    return 0
