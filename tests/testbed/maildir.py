"""The mail side of the private Dovecot: maildirs written directly, and doveadm for what Dovecot owns.

A mixin of ``Dovecot`` (it uses its ``mail_dir``, ``mail_uid``, ``users()``,
``doveadm()`` and log): delivering by dropping files into ``new/`` is what
makes tens of thousands of messages per second possible.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from imapclient import IMAPClient


class DovecotError(RuntimeError):
    """Raised when the private Dovecot cannot be started, stopped or driven."""


class MailStore:
    def create_folder(self, user: str, folder: str) -> None:
        """Create a folder on disk (Maildir++ ".Name"); it shows up in LIST at once."""
        self._make_maildir(self._folder_dir(user, folder))

    def _folder_dir(self, user: str, folder: str) -> Path:
        home = self.mail_dir / user
        if folder.upper() == "INBOX":
            return home
        return home / ("." + folder.replace("/", "."))

    def _make_maildir(self, path: Path) -> None:
        for d in (path, path / "cur", path / "new", path / "tmp"):
            try:
                os.mkdir(d)
            except FileExistsError:
                continue
            except FileNotFoundError:
                d.mkdir(parents=True)
            self._chown(d)
        if path.parent != self.mail_dir:  # a folder: its owner dir must be ours too
            self._chown(path.parent)

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.mail_uid, self.mail_gid)

    # -- mail ------------------------------------------------------------

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Drop one message into the folder's maildir new/ (no IMAP round trip).

        Dovecot indexes it on the next access to the folder; see index().
        """
        self.deliver_many([(user, raw)], folder)

    def deliver_many(self, items: Iterable[tuple[str, bytes]], folder: str = "INBOX") -> int:
        """Bulk version of deliver(); tens of thousands of messages per second. Returns the count."""
        count = 0
        dirs: dict[str, Path] = {}
        pid = os.getpid()
        for user, raw in items:
            path = dirs.get(user)
            if path is None:
                path = self._folder_dir(user, folder)
                if not (path / "new").is_dir():
                    if user not in self.users():
                        raise DovecotError(f"no such user: {user}")
                    self._make_maildir(path)
                dirs[user] = path
            name = f"{time.time_ns() // 1000}.M{next(self._counter)}P{pid}.{self._host},S={len(raw)}"
            tmp = path / "tmp" / name
            with open(tmp, "wb") as f:
                f.write(raw)
                if os.geteuid() == 0:
                    os.fchown(f.fileno(), self.mail_uid, self.mail_gid)
            os.rename(tmp, path / "new" / name)
            count += 1
        return count

    def append_imap(self, user: str, password: str, raw: bytes, folder: str = "INBOX") -> int:
        """Store a message with a real IMAP APPEND; returns its UID (from APPENDUID)."""
        with IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=30) as client:
            client.login(user, password)
            response = client.append(folder, raw)
            client.logout()
        match = re.search(rb"APPENDUID \d+ (\d+)", response)
        if not match:
            raise DovecotError(f"no APPENDUID in {response!r}")
        return int(match.group(1))

    def index(self, folder: str = "INBOX") -> None:
        """Make Dovecot index newly dropped files for all users now (~20,000 messages/s)."""
        self.doveadm("mailbox", "status", "-A", "messages", folder)

    def message_count(self, user: str, folder: str = "INBOX") -> int:
        """Number of messages in the folder as Dovecot sees it (indexes new files first)."""
        return int(self._status(user, folder, "messages"))

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Current UIDVALIDITY of the folder."""
        return int(self._status(user, folder, "uidvalidity"))

    def _status(self, user: str, folder: str, field: str) -> str:
        out = self.doveadm("-f", "flow", "mailbox", "status", "-u", user, field, folder)
        match = re.search(rf"{field}=(\d+)", out)
        if not match:
            raise DovecotError(f"unexpected doveadm output: {out!r}")
        return match.group(1)

    def reset_uidvalidity(self, user: str, folder: str = "INBOX", value: int | None = None) -> int:
        """Give the folder a new UIDVALIDITY but keep its UIDs; returns the new value.

        Sessions that have the folder selected are disconnected by Dovecot.
        """
        if value is None:
            value = max(self.uidvalidity(user, folder) + 1, int(time.time()))
        if not 0 < value < 2**32:
            raise ValueError(f"UIDVALIDITY must be a non-zero 32-bit value, got {value}")
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)
        return value

    def renumber_uids(self, user: str, folder: str = "INBOX") -> None:
        """Forget the folder's UID map and indexes: new UIDVALIDITY, UIDs from 1 again."""
        path = self._folder_dir(user, folder)
        for f in path.glob("dovecot-uidlist*"):
            f.unlink()
        for f in path.glob("dovecot.index*"):
            f.unlink()

    def login_attempts(self, user: str) -> int:
        """Login attempts (good or bad) for user so far, counted from the log.

        Successes are imap-login "Login: user=<u>" lines; failures are the
        auth process's per-attempt "passwd-file(u,...)" lines (auth_verbose).
        The log is written asynchronously, so poll if you need an exact count.
        """
        text = self._log_tail(n=1 << 30)
        ok = len(re.findall(rf"imap-login: Info: Login: user=<{re.escape(user)}>", text))
        bad = len(
            re.findall(
                rf"auth: Info: passwd-file\({re.escape(user)},[^)]*\): "
                rf"(?:Password mismatch|unknown user)",
                text,
            )
        )
        return ok + bad
