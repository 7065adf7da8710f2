"""``mailq schedule sync|list``: the recurring polls in Redis (the farm's processes are in ``process_cmd``)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .. import ops
from ..text import literal
from .common import add_json, fit, open_db, out, print_json


def register(sub) -> None:
    p = sub.add_parser("schedule", help="the recurring polls in Redis")
    ssub = p.add_subparsers(dest="schedule_command", metavar="ACTION")
    ssub.required = True
    sync = ssub.add_parser("sync", help="reconcile the recurring polls with the database once")
    add_json(sync)
    sync.set_defaults(handler=schedule_sync)
    ls = ssub.add_parser("list", help="recurring polls: mailbox, interval, next run")
    ls.add_argument("--limit", type=int, default=10_000, help="show at most this many (default 10000)")
    add_json(ls)
    ls.set_defaults(handler=schedule_list)


def schedule_sync(args) -> int:
    settings = open_db(args)
    report = ops.resync(settings)
    if args.json:
        print_json({"added": report.added, "removed": report.removed, "updated": report.updated, "unchanged": report.unchanged})
        return 0
    out.print(f"added {len(report.added)}, removed {len(report.removed)}, updated {len(report.updated)}, unchanged {report.unchanged}")
    for label, items in (("added", report.added), ("removed", report.removed), ("updated", report.updated)):
        if items:
            out.print(Text(f"  {label}: " + ", ".join(str(i) for i in items[:50]) + (" ..." if len(items) > 50 else "")))
    return 0


def schedule_list(args) -> int:
    settings = open_db(args)
    polls, total = ops.scheduled_polls(settings, 0, args.limit)
    if args.json:
        print_json(
            [
                {
                    "job_id": p.job_id,
                    "mailbox_id": p.mailbox_id,
                    "mailbox": p.mailbox_name,
                    "interval": p.interval,
                    "next_run_at": p.next_run_at.isoformat() + "Z" if p.next_run_at else None,
                }
                for p in polls
            ]
        )
        return 0
    if not polls:
        out.print("no recurring polls: run `mailq schedule sync` (or start `mailq scheduler`)")
        return 0
    table = Table("mailbox", "name", "interval", "next run (UTC)", "job", box=None)
    for p in polls:
        table.add_row(
            str(p.mailbox_id),
            Text(literal(p.mailbox_name or "(deleted)")),
            f"{p.interval}s" if p.interval else "?",
            p.next_run_at.strftime("%Y-%m-%d %H:%M:%S") if p.next_run_at else "-",
            p.job_id,
        )
    out.print(fit(table, drop=("job",)))
    if total > len(polls):
        out.print(f"... {total - len(polls)} more (use --limit)")
    return 0
