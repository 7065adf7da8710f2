"""What mailq stores on this host, and whether other users could read it (``mailq status``, ``db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from .. import files
from ..config import Settings
from ..db import sqlite_path


def stored_paths(settings: Settings) -> list[Path]:
    """The var directory, the SQLite database with its WAL/SHM, the local blob store and the key file."""
    paths = [settings.var_dir]
    db_file = sqlite_path(settings.database_url)
    if db_file is not None:
        paths += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
    if urlparse(settings.storage_url).scheme == "file":
        paths.append(Path(settings.storage_url[len("file://") :]))
    if not settings.secret_key:
        paths.append(settings.secret_key_file)
    return [p for p in dict.fromkeys(paths) if p.exists()]


def tighten(settings: Settings) -> list[str]:
    """Make everything mailq stores owner-only (files 0600, directories 0700); returns the paths changed.

    The var directory itself is tightened but not walked: it may hold things that are not mailq's.
    """
    paths = stored_paths(settings)
    top = [p for p in paths if p == settings.var_dir]
    return files.tighten(top, recursive=False) + files.tighten([p for p in paths if p != settings.var_dir])


def exposed(settings: Settings) -> list[str]:
    """Stored paths group or other users can access (a sample of each directory, so it stays cheap)."""
    return files.exposed(stored_paths(settings))
