"""The idle poll's hot reads, with their SQL built once per process.

peewee builds a query's SQL anew on every call; for a one-row lookup that is
most of the cost (measured here: ``Mailbox.get_or_none`` ~1.5 ms, the same
SELECT through ``Model.raw`` with the SQL built once ~0.14 ms, on a loaded
2-core box). Every idle poll reads its mailbox and each folder's state, so
these two reads keep their SQL text per database class (SQLite and PostgreSQL
quote and bind differently) and only bind new parameters. Rows come back as
the usual model instances, with the fields' usual conversions.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw

from .db import database, errors_as_mailq
from .models import FolderState, Mailbox

_sql: dict[tuple[type, str], str] = {}


def _first(model: type[pw.Model], name: str, build: Callable[[], pw.Query], *params):
    key = (type(database.obj), name)
    sql = _sql.get(key)
    if sql is None:
        sql = _sql[key] = build().sql()[0]
    with errors_as_mailq():
        return next(iter(model.raw(sql, *params)), None)


def mailbox(mailbox_id: int) -> Mailbox | None:
    """The mailbox row by id, or None."""
    return _first(Mailbox, "mailbox", lambda: Mailbox.select().where(Mailbox.id == 0), mailbox_id)


def mailboxes(mailbox_ids: list[int]) -> dict[int, Mailbox]:
    """Several mailbox rows by id in one query (a poll group's); the SQL is kept per list length."""
    if not mailbox_ids:
        return {}
    key = (type(database.obj), f"mailboxes-{len(mailbox_ids)}")
    sql = _sql.get(key)
    if sql is None:
        sql = _sql[key] = Mailbox.select().where(Mailbox.id.in_(list(range(len(mailbox_ids))))).sql()[0]
    with errors_as_mailq():
        return {row.id: row for row in Mailbox.raw(sql, *mailbox_ids)}


def folder_state(mailbox_id: int, folder: str) -> FolderState | None:
    """The sync state of one folder of a mailbox, or None before its first sync."""
    build = lambda: FolderState.select().where((FolderState.mailbox == 0) & (FolderState.name == ""))  # noqa: E731
    return _first(FolderState, "folder_state", build, mailbox_id, folder)
