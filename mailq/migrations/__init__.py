"""Versioned schema migrations: ``mailq db upgrade`` applies the missing ones in order.

Each migration is a module ``mNNNN_name.py`` with ``upgrade(db)``; it only adds
(tables, columns, indexes) and never drops data. The applied version lives in
the ``mailq_schema`` table; re-running ``upgrade`` is a no-op.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import peewee as pw

from ..db import database, errors_as_mailq
from ..errors import DatabaseError
from ..models import utcnow


class SchemaVersion(pw.Model):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=100)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "mailq_schema"


def _discover() -> list[tuple[int, str, Callable]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append((int(info.name[1:5]), info.name[6:], module.upgrade))
    return sorted(found)


MIGRATIONS = _discover()
HEAD = MIGRATIONS[-1][0]


def current_version() -> int:
    """The schema version of the bound database (0 for an empty one)."""
    with errors_as_mailq():
        if not SchemaVersion.table_exists():
            return 0
        return SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 0


def upgrade(target: int | None = None, on_step: Callable[[int, str], None] | None = None) -> list[int]:
    """Apply every migration above the current version up to ``target``; returns those applied."""
    target = HEAD if target is None else target
    applied = []
    with errors_as_mailq():
        database.create_tables([SchemaVersion], safe=True)
        have = current_version()
        for version, name, step in MIGRATIONS:
            if version <= have or version > target:
                continue
            with database.atomic():
                step(database.obj)
                SchemaVersion.create(version=version, name=name)
            applied.append(version)
            if on_step:
                on_step(version, name)
    return applied


def require_head() -> None:
    """Fail clearly when the database is older than this code."""
    version = current_version()
    if version < HEAD:
        raise DatabaseError(f"the database schema is at version {version}, this mailq needs {HEAD}: run `mailq db upgrade`")
