"""The database: one peewee ``DatabaseProxy`` bound from ``MAILQ_DATABASE_URL``.

SQLite runs in WAL mode with a busy timeout and foreign keys on, because several
worker processes write at once. Connections are opened per process (and again after a fork
with ``MAILQ_WORKER_FORK=1``), never inherited.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as _connect_url

from . import files
from .errors import DatabaseError

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30_000,
    "foreign_keys": 1,
    "synchronous": "normal",
}

_bound_url: str | None = None
_bound_pid: int | None = None


class _SqliteDatabase(peewee.SqliteDatabase):
    """SQLite whose transactions take the write lock up front (``BEGIN IMMEDIATE``).

    A plain ``BEGIN`` that reads and then writes fails at once with "database is
    locked" when another process committed in between (the busy timeout cannot
    help a deferred transaction upgrade its lock); several workers ingesting into
    one file hit that on most polls. IMMEDIATE makes them queue on the busy timeout.
    """

    def begin(self, lock_type: str | None = None) -> None:
        super().begin(lock_type or "IMMEDIATE")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite://`` URL (None for other databases and ``:memory:``)."""
    if urlparse(url).scheme != "sqlite":
        return None
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url[len("sqlite://") :]
    return Path(path) if path and path != ":memory:" else None


def make_database(url: str) -> peewee.Database:
    """A peewee database for ``url`` (not yet connected).

    A new SQLite file is created owner-only before SQLite opens it: SQLite gives
    its -wal and -shm files the main file's permissions, so all three stay private.
    """
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            try:
                files.private_dir(path.parent)
                files.private_file(path)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the database file {path}: {exc.strerror or exc}: check MAILQ_DATABASE_URL (or MAILQ_VAR_DIR) and its permissions",
                    orig=exc,
                ) from None
        return _SqliteDatabase(str(path) if path else ":memory:", pragmas=SQLITE_PRAGMAS, timeout=30)
    if scheme in ("postgresql", "postgres"):
        db = _connect_url(url.replace("postgres://", "postgresql://", 1))
        db.autorollback = True
        return db
    raise DatabaseError(f"MAILQ_DATABASE_URL: unsupported scheme {scheme!r}, use sqlite:// or postgresql://")


def bind(url: str) -> peewee.Database:
    """Point the models at ``url``; rebinding in a forked child opens a fresh connection."""
    global _bound_url, _bound_pid
    if _bound_url == url and _bound_pid == os.getpid() and database.obj is not None:
        return database.obj
    if database.obj is not None and _bound_pid == os.getpid():
        close()
    database.initialize(make_database(url))
    _bound_url, _bound_pid = url, os.getpid()
    return database.obj


def close() -> None:
    if database.obj is not None and not database.is_closed():
        database.close()


def revive() -> None:
    """Before a job: keep this process's open connection if it still works, else drop it (reconnect on use).

    A worker that runs jobs in-process reuses one connection instead of opening
    one per poll (an SQLite open plus four PRAGMAs; for PostgreSQL a TCP login
    and a server process). A PostgreSQL restart breaks a kept connection, so it
    is checked with one ``SELECT 1``; SQLite has nothing to check.
    """
    if database.obj is None or database.is_closed() or _bound_pid != os.getpid():
        return
    if not is_postgres():
        return
    try:
        database.execute_sql("SELECT 1")
    except peewee.PeeweeException:
        try:
            database.close()
        except peewee.PeeweeException:
            database.obj.dispose()  # forget the dead connection; the next query opens a new one


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


@contextlib.contextmanager
def errors_as_mailq() -> Iterator[None]:
    """Turn database driver errors (peewee's) into ``DatabaseError`` with an actionable message.

    Database errors only: anything else (Redis, disk, IMAP) passes through untouched.
    """
    try:
        yield
    except peewee.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "no such table" in text or ("does not exist" in text and "relation" in text):
            raise DatabaseError(f"the database is not set up ({text}): run `mailq db upgrade`", orig=exc) from None
        if "locked" in text:
            raise DatabaseError(f"the database is locked by another process ({text}): retry shortly", orig=exc) from None
        raise DatabaseError(f"database unavailable: {text}: check MAILQ_DATABASE_URL", orig=exc) from None
    except peewee.ProgrammingError as exc:
        text = str(exc).strip().splitlines()[0]
        if "does not exist" in text:
            raise DatabaseError(f"the database is not set up ({text}): run `mailq db upgrade`", orig=exc) from None
        raise DatabaseError(f"database error: {text}", orig=exc) from None
    except peewee.InterfaceError as exc:
        raise DatabaseError(f"database connection lost: {exc}: check MAILQ_DATABASE_URL", orig=exc) from None


def insert_rows(model, rows: list[dict[str, Any]], ignore_conflicts: bool = False) -> None:
    """Multi-row INSERT (optionally ON CONFLICT DO NOTHING, SQLite and PostgreSQL), built directly.

    peewee's insert_many spent ~0.2 ms per row generating SQL, as much as
    parsing the message; this statement costs almost nothing to build.
    """
    if not rows:
        return
    fields = [model._meta.fields[name] for name in rows[0]]
    one = "(" + ", ".join([database.obj.param] * len(fields)) + ")"
    sql = (
        f'INSERT INTO "{model._meta.table_name}" ('
        + ", ".join(f'"{f.column_name}"' for f in fields)
        + ") VALUES "
        + ", ".join([one] * len(rows))
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )
    database.execute_sql(sql, [f.db_value(row[f.name]) for row in rows for f in fields])
