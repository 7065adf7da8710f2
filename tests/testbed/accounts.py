"""Test-bed accounts: their names and passwords, and the CSV that imports them into mailq.

The CSV's columns are mailq's own (``mailq.mailboxes.CSV_COLUMNS``), so the
test bed cannot drift from what ``mailq mailbox import`` reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

from mailq.mailboxes import CSV_COLUMNS

CSV_HEADER = ",".join(CSV_COLUMNS) + "\n"
"""The header line of ``mailq mailbox import``'s CSV (rows may stop after any column)."""


def user_name(i: int) -> str:
    return f"user{i:04d}"


def password_for(name: str) -> str:
    return f"pw-{name}"


def write_mailbox_csv(path: Path, port: int, users: Mapping[str, str], interval: int = 60) -> Path:
    """Write ``mailq mailbox import`` input for ``users`` (name -> password) on 127.0.0.1:``port``.

    It holds the passwords: readable by this user only, whatever the umask.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for name, password in users.items():
            writer.writerow([name, "127.0.0.1", port, "plain", name, password, "INBOX", interval, "normal"])
    return path


def tagged(name: str, pool: list[bytes]) -> list[bytes]:
    """``pool`` (mailgen's messages) with Message-IDs made unique to user ``name``."""
    tag = f".{name}@mailgen.example>".encode()
    return [raw.replace(b"@mailgen.example>", tag, 1) for raw in pool]


def deliver_tagged(dovecot, name: str, pool: list[bytes]) -> int:
    """Deliver ``tagged(name, pool)`` to ``name``; returns the count."""
    return dovecot.deliver_many((name, raw) for raw in tagged(name, pool))
