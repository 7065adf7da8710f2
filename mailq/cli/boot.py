"""A command's settings and database, without the output stack: the farm's long-running processes start from here.

``mailq worker``, ``scheduler``, ``idler`` and ``metrics`` import only this and
the engine, not Rich or the operator commands (see ``process_cmd``): eight
Procfile processes starting at once on two cores is a first ingest's first
seconds.
"""

from __future__ import annotations

from .. import config, db, migrations
from ..config import Settings


def settings(args) -> Settings:
    current = config._current
    if current is None:
        current = config.load(env_file=getattr(args, "env_file", ".env"))
        config.use(current)
    return current


def open_db(args, require_schema: bool = True) -> Settings:
    """Settings with the database bound; by default checks the schema is upgraded."""
    s = settings(args)
    db.bind(s.database_url)
    if require_schema:
        migrations.require_head()
    return s
