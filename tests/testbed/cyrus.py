"""A private Cyrus IMAP server on 127.0.0.1: the second server implementation the sync suite runs against.

Debian's ``cyrus-imapd`` package conflicts with ``dovecot-imapd``, so it is
not installed: ``.ci/run`` installs ``cyrus-common`` and ``sasl2-bin`` (no
conflict: master, lmtpd, ctl_cyrusdb, saslpasswd2) and unpacks ``cyrus-imapd``
(just ``imapd``) with ``dpkg -x`` into ``.cache/cyrus-imapd`` (or
``$MAILQ_CYRUS_IMAPD``). Everything else lives under the instance's root:
imapd.conf and cyrus.conf (every service gets ``-C``: the master does not pass
its own down), the mailbox database, spool, sockets and a sasldb of users.
Cyrus logs only to syslog.

It is driven like ``Dovecot`` (same method names where the sync tests use
them). Messages go in by IMAP APPEND as RFC 3516 ``~{n}`` literals: Cyrus
refuses NUL bytes and bare LFs in plain literals, and keeps them in binary ones.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from .net import free_port, port_open
from .waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CYRUS_BIN = Path("/usr/lib/cyrus/bin")  # cyrus-common
ADMIN, ADMIN_PW = "mailqadmin", "pw-mailqadmin"


class CyrusError(RuntimeError):
    """Raised when the private Cyrus cannot be started or driven."""


class CyrusRefused(CyrusError):
    """Raised when Cyrus answers NO to an APPEND (it validates messages: no empty ones, no invalid headers)."""


def imapd_path() -> Path:
    base = Path(os.environ.get("MAILQ_CYRUS_IMAPD") or ROOT / ".cache" / "cyrus-imapd")
    return base / "usr" / "lib" / "cyrus" / "bin" / "imapd"


def missing() -> str | None:
    """What is not installed (the message says how to install it), or None."""
    if not (CYRUS_BIN / "master").exists():
        return "Cyrus is not installed: apt-get install cyrus-common sasl2-bin (see .ci/run)"
    if not imapd_path().exists():
        return f"{imapd_path()} is missing: apt-get download cyrus-imapd && dpkg -x cyrus-imapd_*.deb .cache/cyrus-imapd (see .ci/run)"
    return None


_IMAPD_CONF = """\
configdirectory: {root}/config
partition-default: {root}/spool
defaultpartition: default
sievedir: {root}/sieve
admins: {admin}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
sasl_mech_list: PLAIN LOGIN
unixhierarchysep: yes
altnamespace: no
lmtpsocket: {root}/socket/lmtp
idlesocket: {root}/socket/idle
notifysocket: {root}/socket/notify
mboxname_lockpath: {root}/run/lock
proc_path: {root}/run/proc
statuscache_db_path: {root}/config/statuscache.db
duplicate_db_path: {root}/config/deliver.db
ptscache_db_path: {root}/config/ptscache.db
tls_sessions_db_path: {root}/config/tls_sessions.db
master_pid_file: {root}/run/master.pid
syslog_prefix: mailq-cyrus
cyrus_user: {user}
"""

_CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb -C {root}/imapd.conf -r"
}}
SERVICES {{
  imap cmd="{imapd} -C {root}/imapd.conf" listen="127.0.0.1:{port}" prefork=1
}}
EVENTS {{
}}
DAEMON {{
}}
"""


class Cyrus:
    """One private Cyrus instance under ``root``; ``start()``, ``add_user()``, ``deliver()``, ``stop()``."""

    name = "cyrus"

    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.imap_port = free_port()
        self.passwords: dict[str, str] = {}
        self.refused: list[tuple[bytes, str]] = []  # messages Cyrus would not store, with its answer
        self._proc: subprocess.Popen | None = None
        self._user = "cyrus" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    def start(self) -> None:
        problem = missing()
        if problem:
            raise CyrusError(problem)
        for d in ("config", "spool", "sieve", "socket", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        fmt = {"root": self.root, "admin": ADMIN, "user": self._user, "bin": CYRUS_BIN, "imapd": imapd_path(), "port": self.imap_port}
        (self.root / "imapd.conf").write_text(_IMAPD_CONF.format(**fmt))
        (self.root / "cyrus.conf").write_text(_CYRUS_CONF.format(**fmt))
        self._saslpasswd(ADMIN, ADMIN_PW)
        if os.geteuid() == 0:
            self._own(self.root)
            # pytest's tmp dirs (and a clone under /root) are 0700: let the cyrus user traverse them, never list them
            for parent in [*self.root.parents, *imapd_path().parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
        self._proc = subprocess.Popen(
            [str(CYRUS_BIN / "master"), "-C", str(self.root / "imapd.conf"), "-M", str(self.root / "cyrus.conf")],
            stdin=subprocess.DEVNULL,
            stdout=open(self.root / "master.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: port_open(self.imap_port), 20, f"cyrus on port {self.imap_port}", interval=0.1, error=CyrusError)
            wait_for(self._login_works, 20, "cyrus to accept logins", interval=0.1, error=CyrusError)
        except Exception:
            self.stop()
            raise

    def _own(self, path: Path) -> None:
        entry = pwd.getpwnam(self._user)
        for dirpath, _dirnames, filenames in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)

    def _login_works(self) -> bool:
        try:
            with self._admin():
                return True
        except Exception:
            return False

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait(5)
        self._proc = None

    # -- users and mail --------------------------------------------------

    def _saslpasswd(self, user: str, password: str) -> None:
        subprocess.run(
            ["saslpasswd2", "-p", "-c", "-f", str(self.root / "sasldb2"), "-u", socket.gethostname(), user],
            input=password.encode(),
            check=True,
            capture_output=True,
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root / "sasldb2", entry.pw_uid, entry.pw_gid)

    def _admin(self):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=10)
        client.login(ADMIN, ADMIN_PW)
        return client

    def add_user(self, user: str, password: str) -> None:
        self._saslpasswd(user, password)
        with self._admin() as admin:
            admin.create_folder(f"user/{user}")
        self.passwords[user] = password

    def _session(self, user: str) -> _Raw:
        return _Raw(self.imap_port, user, self.passwords[user])

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        with self._session(user) as s:
            s.append(folder, raw)

    def deliver_many(self, items: Iterable[tuple[str, bytes]], folder: str = "INBOX") -> int:
        """APPEND each message; one Cyrus refuses (NO: empty, invalid header) is kept in ``refused``. Returns the count stored."""
        by_user: dict[str, list[bytes]] = {}
        for user, raw in items:
            by_user.setdefault(user, []).append(raw)
        stored = 0
        for user, raws in by_user.items():
            with self._session(user) as session:
                for raw, refusal in zip(raws, session.append_many(folder, raws)):
                    if refusal:
                        self.refused.append((raw, refusal))
                    else:
                        stored += 1
        return stored

    def index(self, folder: str = "INBOX") -> None:
        """Nothing to do: Cyrus indexes on delivery."""

    def message_count(self, user: str, folder: str = "INBOX") -> int:
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=10) as client:
            client.login(user, self.passwords[user])
            return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """A new UIDVALIDITY and UIDs from 1 for the same messages: delete the mailbox, recreate it, append them again."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=30) as client:
            client.login(user, self.passwords[user])
            info = client.select_folder(folder, readonly=True)
            old = info[b"UIDVALIDITY"]
            uids = client.search(["ALL"])
            raws = [d[b"BODY[]"] for _, d in sorted(client.fetch(uids, ["BODY.PEEK[]"]).items())] if uids else []
        with self._admin() as admin:
            admin.setacl(f"user/{user}", ADMIN, "lrswipkxtecda")  # an admin may change ACLs, then delete
            admin.delete_folder(f"user/{user}")
            time.sleep(1.1)  # Cyrus derives UIDVALIDITY from the clock
            admin.create_folder(f"user/{user}")
        self.deliver_many((user, raw) for raw in raws)
        with IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=10) as client:
            client.login(user, self.passwords[user])
            if client.select_folder(folder, readonly=True)[b"UIDVALIDITY"] == old:
                raise CyrusError("the UIDVALIDITY did not change")


class _Raw:
    """A minimal IMAP session for APPEND with a ``~{n}`` literal (imaplib and imapclient only send ``{n}``)."""

    def __init__(self, port: int, user: str, password: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.n = 0
        self._line()  # greeting
        self._command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise CyrusError("cyrus closed the connection")
        return line

    def _command(self, text: bytes, literal: bytes | None = None) -> None:
        self.n += 1
        tag = b"W%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" ~{%d}\r\n" % len(literal))
            line = self._line()
            if not line.startswith(b"+"):
                raise CyrusError(f"APPEND refused: {line!r}")
            self.sock.sendall(literal + b"\r\n")
        while True:
            line = self._line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise (CyrusRefused if line.startswith(tag + b" NO") else CyrusError)(f"{text[:40]!r} failed: {line!r}")
                return

    def append(self, folder: str, raw: bytes) -> None:
        self._command(b'APPEND "%s"' % folder.encode(), literal=raw)

    def append_many(self, folder: str, raws: list[bytes]) -> list[str | None]:
        """APPEND every message; the refusal of each, or None.

        One MULTIAPPEND first (Cyrus syncs its database once per command: one
        APPEND per message ran at ~30/s); if Cyrus refuses any of them (NO to
        empty messages and some invalid headers), one pipelined APPEND each.
        """
        if raws and all(raws):
            self.n += 1
            tag = b"W%d" % self.n
            parts = [tag, b' APPEND "%s"' % folder.encode()]
            for raw in raws:
                parts.append(b" ~{%d+}\r\n" % len(raw) + raw)
            self.sock.sendall(b"".join(parts) + b"\r\n")
            while True:
                line = self._line()
                if line.startswith(tag + b" "):
                    break
            if line.startswith(tag + b" OK"):
                return [None] * len(raws)
        return self._append_each(folder, raws)

    def _append_each(self, folder: str, raws: list[bytes]) -> list[str | None]:
        """One synchronizing ``~{n}`` APPEND each: Cyrus refuses NUL bytes and bare LFs in ``~{n+}`` ones."""
        answers: list[str | None] = []
        for raw in raws:
            if not raw:
                answers.append("Cyrus refuses a zero-length message")
                continue
            try:
                self.append(folder, raw)
                answers.append(None)
            except CyrusRefused as exc:
                answers.append(str(exc))
        return answers

    def __enter__(self) -> _Raw:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._command(b"LOGOUT")
        except Exception:
            pass
        self.sock.close()
