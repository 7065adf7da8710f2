"""``mailq idler``: hold IMAP IDLE connections and trigger polls on new mail (see ``mailq/push``)."""

from __future__ import annotations

from ..push import idler
from ..queues import connect
from .common import open_db


def register(sub) -> None:
    p = sub.add_parser("idler", help="hold IDLE connections for pushed mailboxes and poll them on new mail, until stopped")
    p.add_argument("--name", help="idler name (default: host, pid and a random suffix)")
    p.set_defaults(handler=run_idler)


def run_idler(args) -> int:
    settings = open_db(args)

    connect(settings, check=True)
    idler.run(settings, args.name)
    return 0
