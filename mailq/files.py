"""Owner-only files: everything mailq stores (raw mail, the database, keys) is private to its user.

Modes are set explicitly at creation (``os.open``/``os.mkdir`` with 0600/0700,
which the umask can only narrow), so a permissive umask never exposes mail.
``tighten`` fixes a tree made by an older release; ``exposed`` finds what other
users could still read, for ``mailq status``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) owner-only; an existing directory is left as it is."""
    path = Path(path)
    if path.is_dir():
        return path
    if not path.parent.is_dir():
        private_dir(path.parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return path
    os.chmod(path, DIR_MODE)  # exact, even under an odd umask such as 0277
    return path


def private_file(path: str | Path) -> bool:
    """Create an empty owner-only file unless it exists (e.g. SQLite's database, before it opens it); True if created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def readable_by_others(path: str | Path) -> bool:
    """Group or others may read or change it; a directory they may only traverse (x) is not listable, so it passes."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if stat.S_ISDIR(mode):
        return bool(mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH))
    return bool(mode & _OTHERS)


def _chmod_private(path: str, is_dir: bool) -> bool:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode) or not mode & _OTHERS:
        return False
    os.chmod(path, (stat.S_IMODE(mode) & ~_OTHERS) | (stat.S_IRWXU if is_dir else stat.S_IRUSR | stat.S_IWUSR))
    return True


def tighten(paths: Iterable[str | Path], recursive: bool = True) -> list[str]:
    """Take group/other access off each path and (``recursive``) everything below; returns what changed."""
    changed: list[str] = []
    for top in paths:
        top = str(top)
        if not os.path.lexists(top):
            continue
        is_dir = os.path.isdir(top)
        if _chmod_private(top, is_dir):
            changed.append(top)
        if not (is_dir and recursive):
            continue
        for parent, dirs, names in os.walk(top):
            for name in dirs:
                if _chmod_private(os.path.join(parent, name), True):
                    changed.append(os.path.join(parent, name))
            for name in names:
                if _chmod_private(os.path.join(parent, name), False):
                    changed.append(os.path.join(parent, name))
    return changed


def exposed(paths: Iterable[str | Path], sample_children: int = 300) -> list[str]:
    """Which of ``paths`` (and the first entries of each directory) group or others can access: a cheap check."""
    found: list[str] = []
    for top in paths:
        top = Path(top)
        if not top.exists():
            continue
        if readable_by_others(top):
            found.append(str(top))
        if top.is_dir():
            with os.scandir(top) as entries:
                for i, entry in enumerate(entries):
                    if i >= sample_children:
                        break
                    if readable_by_others(entry.path):
                        found.append(entry.path)
    return found
