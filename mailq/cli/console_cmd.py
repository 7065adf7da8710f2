"""``mailq console [--refresh SECONDS]``: the Textual operator console."""

from __future__ import annotations

from ..errors import UsageError
from .common import open_db


def register(sub) -> None:
    p = sub.add_parser("console", help="the live operator console (queues, workers, failed jobs, schedules, mailboxes)")
    p.add_argument(
        "--refresh", type=float, default=None, metavar="SECONDS", help="seconds between refreshes (default MAILQ_CONSOLE_REFRESH, 2)"
    )
    p.add_argument(
        "--view",
        choices=("overview", "mailboxes", "queues", "failed", "schedule", "messages"),
        default="overview",
        help="the view to open first",
    )
    p.set_defaults(handler=console)


def console(args) -> int:
    if args.refresh is not None and args.refresh < 0.2:
        raise UsageError("--refresh: must be at least 0.2 seconds")
    settings = open_db(args)
    from console.app import MailqConsole  # Textual loads only for this command
    from console.source import OpsSource

    MailqConsole(OpsSource(settings, args.refresh), view=args.view).run()
    return 0
