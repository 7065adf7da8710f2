"""What every command needs: settings, a bound database, output helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from .. import config, db, migrations
from ..config import Settings

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def add_json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
