"""What every command needs: settings, a bound database, output helpers."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from .boot import open_db, settings  # noqa: F401  (every command imports them from here)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_secret(from_stdin: bool, env_var: str | None, env_flag: str, what: str) -> str:
    """A secret from standard input (one line on a terminal, else all of it) or an environment variable."""

    if from_stdin:
        data = sys.stdin.readline() if sys.stdin.isatty() else sys.stdin.read()
        value = data.rstrip("\r\n")
    else:
        if env_var not in os.environ:
            raise UsageError(f"{env_flag}: {env_var} is not set in the environment")
        value = os.environ[env_var]
    if not value:
        raise UsageError(f"the {what} is empty")
    return value


def add_json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _natural_width(column) -> int:
    cells = [column.header, *column._cells]
    return max(cell.cell_len if isinstance(cell, Text) else len(str(cell)) for cell in cells)


def fit(table: Table, drop: tuple[str, ...] = ()) -> Table:
    """One line per row at the terminal's width (80 when piped): columns named in ``drop`` go first
    (in that order) while the table is too wide, then the widest columns are cut with an ellipsis."""
    pad = (table.padding[1] + table.padding[3]) if isinstance(table.padding, tuple) and len(table.padding) == 4 else 2

    def room() -> int:
        return out.width - pad * len(table.columns)

    for header in drop:
        if sum(_natural_width(c) for c in table.columns) <= room():
            break
        table.columns = [c for c in table.columns if c.header != header]
    widths = [_natural_width(c) for c in table.columns]
    cap = max(widths, default=0)
    while cap > 4 and sum(min(w, cap) for w in widths) > room():
        cap -= 1
    for column, natural in zip(table.columns, widths):
        column.no_wrap, column.overflow, column.width = True, "ellipsis", min(natural, cap)
    return table


def fields(rows: list[tuple[str, Any]]) -> None:
    """``key  value`` lines, never shortened (hashes, URLs stay whole; a terminal may fold a long one)."""
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        out.print(Text(f"{key:<{width}}  ") + (value if isinstance(value, Text) else Text(str(value))))
