"""The idle poll's SQL, built once per process: its reads and its one write transaction.

peewee builds a query's SQL anew on every call; for a one-row statement that is
most of the cost (measured here: ``Mailbox.get_or_none`` ~1.5 ms, the same
SELECT through ``Model.raw`` with the SQL built once ~0.14 ms; an idle poll's
end, a poll-run INSERT and a mailbox UPDATE, 1.19 ms through peewee and 0.23 ms
with their SQL kept, on a loaded 2-core box). Every idle poll reads its mailbox
and each folder's state and writes its run and health, so these statements keep
their SQL text per database class (SQLite and PostgreSQL quote and bind
differently) and only bind new parameters. Rows come back as the usual model
instances, with the fields' usual conversions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import peewee as pw

from .db import database, errors_as_mailq
from .models import FolderState, Mailbox, PollRun
from .states import State

_sql: dict[tuple[type, str], str] = {}
_writes: dict[tuple[type, str], tuple[str, list, list[list[int]]]] = {}


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


def _execute(name: str, build: Callable[..., pw.Query], values: list) -> None:
    """Run ``build(*values)``'s statement with its SQL built once: the first call builds it with
    stand-in values (distinct, of each value's type) to learn where each value binds."""
    key = (type(database.obj), name)
    found = _writes.get(key)
    if found is None:
        marks = [_mark(i, v) for i, v in enumerate(values)]
        sql, params = build(*marks).sql()
        found = _writes[key] = (sql, params, [[j for j, p in enumerate(params) if p == m] for m in marks])
    sql, params, where = found
    bound = list(params)
    for places, value in zip(where, values):
        for j in places:
            bound[j] = value
    database.execute_sql(sql, bound)


def _mark(i: int, value):
    """A stand-in for ``value`` that no constant of a statement can equal (None binds as text)."""
    if isinstance(value, datetime):
        return datetime(1901, 1, 1, 0, 0, i)
    if isinstance(value, int):
        return -7_000_000 - i
    return f"\x00mailq-mark-{i}"


def finish_clean_poll(
    mailbox_id: int, started_at: datetime, now: datetime, outcome: str, new: int, skipped: int, folders_checked: int, worker: str | None
) -> None:
    """A poll that ended well and was never recorded as running (an idle one): its run row and the
    mailbox back to ``ok``, in one transaction (what ``health.finish_ok`` writes through peewee)."""

    def run(mailbox, started, finished, result, new_count, skipped_count, checked, by):
        return PollRun.insert(
            {
                PollRun.mailbox: mailbox,
                PollRun.started_at: started,
                PollRun.finished_at: finished,
                PollRun.outcome: result,
                PollRun.new_count: new_count,
                PollRun.skipped_count: skipped_count,
                PollRun.folders_checked: checked,
                PollRun.worker: by,
            }
        )

    def health(mailbox, at):
        changes = {
            Mailbox.last_poll_at: at,
            Mailbox.last_success_at: at,
            Mailbox.next_attempt_at: None,
            Mailbox.updated_at: at,
            Mailbox.state: State.OK,
            Mailbox.consecutive_failures: 0,
            Mailbox.last_error: None,
            Mailbox.last_error_class: None,
        }
        return Mailbox.update(changes).where(Mailbox.id == mailbox)

    with errors_as_mailq(), database.atomic():
        _execute("finish-run", run, [mailbox_id, started_at, now, str(outcome), new, skipped, folders_checked, worker])
        _execute("finish-health", health, [mailbox_id, now])
