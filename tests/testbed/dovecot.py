"""A private Dovecot IMAP server on 127.0.0.1 for tests, the demo and benchmarks.

Each instance lives entirely under its own root directory (config, sockets,
state, log, users file, maildirs) and listens on its own ports, so several can
run side by side without touching the system Dovecot or /etc/dovecot.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.testbed.dovecot_conf import CONFIG_TEMPLATE
from tests.testbed.maildir import DovecotError, MailStore
from tests.testbed.net import free_port, make_certificate, port_open
from tests.testbed.procs import children, command_line, pid_alive
from tests.testbed.waiting import wait_for

__all__ = ["Dovecot", "DovecotError", "free_port", "make_certificate", "port_open"]

MAIL_UID = 5000
"""Unprivileged owner of the maildirs when we run as root: Dovecot refuses uid 0 for mail."""

START_TIMEOUT = 15.0
"""Seconds to wait for the ports to open (or close on stop)."""

STOP_GRACE = 1.0
"""Seconds a SIGTERMed Dovecot gets before its process group is SIGKILLed."""

NOFILE = 65536
"""File-descriptor limit wanted for Dovecot: it warns below ~4,000 with our raised limits."""

IMAP_BINARIES = ("/usr/lib/dovecot/imap", "/usr/libexec/dovecot/imap")
"""Dovecot's IMAP server (package dovecot-imapd on Debian); dovecot-core alone has only dovecot and doveadm."""


def missing_tools() -> list[str]:
    """What the test bed needs and this machine lacks: the IMAP binary as well as dovecot and doveadm."""
    missing = [tool for tool in ("dovecot", "doveadm") if shutil.which(tool) is None]
    if not any(os.access(path, os.X_OK) for path in IMAP_BINARIES):
        missing.append(f"Dovecot's IMAP server ({IMAP_BINARIES[0]})")
    return missing


_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""

_OAUTH2_CONF = """\
# Every XOAUTH2/OAUTHBEARER token is checked at the authorization server (RFC 7662).
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def _raise_nofile() -> None:
    """preexec_fn: lift the child's fd limit so Dovecot can hold thousands of sessions."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((NOFILE, max(hard, NOFILE)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return
        except (ValueError, OSError):
            continue


def _next_second(since: float) -> None:
    """Block until the wall clock is past the second `since` falls in."""
    remaining = int(since) + 1 - time.time()
    if remaining > 0:
        time.sleep(remaining + 0.001)


def _only_log_left(pid: int) -> bool:
    return all(command_line(c).rstrip("\0").endswith("/log") for c in children(pid))


def _wait(predicate, timeout: float, what: str) -> None:
    wait_for(predicate, timeout, what, interval=0.1, error=DovecotError)


def _killpg(pid: int) -> None:
    """SIGKILL the daemon's process group (Dovecot's master is a session leader)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Dovecot(MailStore):
    """One private Dovecot instance rooted at `root` (see module docstring)."""

    name = "dovecot"  # tests/testbed/cyrus.Cyrus has the same driving methods

    def __init__(
        self, root: Path, imap_port: int | None = None, imaps_port: int | None = None, oauth2_introspection_url: str | None = None
    ):
        """``oauth2_introspection_url``: also accept XOAUTH2/OAUTHBEARER, each token verified at that URL."""
        self.root = Path(root).absolute()
        self.oauth2_introspection_url = oauth2_introspection_url
        self._auto_ports = imap_port is None or imaps_port is None
        self.imap_port = imap_port or free_port()
        self.imaps_port = imaps_port or free_port()
        while self.imaps_port == self.imap_port:
            self.imaps_port = free_port()
        self.conf_path = self.root / "dovecot.conf"
        self.cert_path = self.root / "cert.pem"
        self.key_path = self.root / "key.pem"
        self.log_path = self.root / "dovecot.log"
        self.users_path = self.root / "users"
        self.mail_dir = self.root / "mail"
        self.base_dir = self.root / "run"
        if os.geteuid() == 0:
            self.mail_uid = self.mail_gid = MAIL_UID
        else:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    def __repr__(self) -> str:
        return f"Dovecot(root={str(self.root)!r}, imap_port={self.imap_port}, imaps_port={self.imaps_port})"

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Write the config and start Dovecot; returns once both ports accept connections.

        A no-op if this instance is already running. With auto-picked ports, a
        port taken by someone else between picking and binding is retried.
        """
        if self.running():
            return
        self._prepare()
        for attempt in range(5):
            self._write_config()
            if self._spawn():
                break
            if not self._auto_ports or attempt == 4 or not self._bind_failed():
                raise DovecotError(f"dovecot failed to start; see {self.log_path}:\n{self._log_tail()}")
            self.imap_port, self.imaps_port = free_port(), free_port()
        # Ports accept (kernel backlog) before the daemon writes master.pid: wait for both.
        _wait(
            lambda: self.running() and port_open(self.imap_port) and port_open(self.imaps_port),
            START_TIMEOUT,
            f"dovecot on ports {self.imap_port}/{self.imaps_port}",
        )
        _wait(self._auth_ready, START_TIMEOUT, "dovecot's auth service")

    def _auth_ready(self) -> bool:
        """True once a login gets a real answer: right after start, logins can still fail with
        "[UNAVAILABLE] Temporary authentication failure" while the auth process comes up."""
        import imaplib

        try:
            client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=5)
        except OSError:
            return False
        try:
            if self.oauth2_introspection_url:  # the oauth2 passdb comes up on its own: probe it too
                try:
                    client.authenticate("XOAUTH2", lambda _: b"user=testbed-warmup\x01auth=Bearer x\x01\x01")
                except imaplib.IMAP4.error as exc:
                    if "UNAVAILABLE" in str(exc):
                        return False
            client.login("testbed-warmup-no-such-user", "x")
        except imaplib.IMAP4.error as exc:
            return "UNAVAILABLE" not in str(exc)
        except OSError:
            return False
        finally:
            try:
                client.shutdown()
            except OSError:
                pass
        return True

    def stop(self) -> None:
        """Stop the instance and wait until it is gone and its ports are closed; idempotent.

        After a graceful SIGTERM, once only Dovecot's log process is left (it
        lingers ~1 s by design) the process group is killed, so a stop takes
        ~0.1 s instead of 1-6 s. Uses the pid in base_dir/master.pid, so it
        works even when the config is gone (e.g. the root was partly deleted).
        """
        pid = self.master_pid()
        if pid is None or not pid_alive(pid):
            return
        os.kill(pid, signal.SIGTERM)  # what `doveadm stop` does, minus its wait for the exit
        try:  # processes still starting up (stats handshake) would hold us 5 s: cap the grace
            _wait(lambda: not pid_alive(pid) or _only_log_left(pid), STOP_GRACE, "dovecot to exit")
        except DovecotError:
            pass
        finally:
            _killpg(pid)
        _wait(lambda: not pid_alive(pid), 5, "dovecot to die")
        _wait(lambda: not port_open(self.imap_port), 5, f"port {self.imap_port} to close")

    def running(self) -> bool:
        """True if this instance's master process is alive."""
        pid = self.master_pid()
        return pid is not None and pid_alive(pid)

    def master_pid(self) -> int | None:
        """The master process's pid (base_dir/master.pid), None when it never started or the file is gone."""
        try:
            return int((self.base_dir / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _prepare(self) -> None:
        """Create the directory layout; clear base_dir (a stale anvil socket stalls logins)."""
        missing = missing_tools()
        if missing:
            raise DovecotError(f"{', '.join(missing)} not found: apt-get install -y dovecot-imapd dovecot-lmtpd")
        shutil.rmtree(self.base_dir, ignore_errors=True)
        for d in (self.root, self.base_dir, self.root / "state", self.mail_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._chown(self.mail_dir)
        self._ensure_traversable(self.mail_dir)
        self.users_path.touch(exist_ok=True)
        if not self.cert_path.exists() or not self.key_path.exists():
            make_certificate(self.cert_path, self.key_path)

    def _ensure_traversable(self, path: Path) -> None:
        """As root, let the mail uid reach the maildirs (pytest's tmp dirs are 0700).

        Only the search (x) bit is added for others, never read, so contents
        of those directories stay unlistable.
        """
        if os.geteuid() != 0:
            return
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def _write_config(self) -> None:
        if os.geteuid() == 0:
            identity = f"mail_uid = {self.mail_uid}\nmail_gid = {self.mail_gid}\nfirst_valid_uid = 1"
            chroot = ""
        else:
            import grp
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            identity = (
                f"default_login_user = {user}\ndefault_internal_user = {user}\n"
                f"default_internal_group = {group}\nfirst_valid_uid = 1\n"
                f"mail_uid = {self.mail_uid}\nmail_gid = {self.mail_gid}"
            )
            chroot = "chroot ="
        dh = Path("/usr/share/dovecot/dh.pem")
        oauth2 = self.oauth2_introspection_url
        if oauth2:
            (self.root / "dovecot-oauth2.conf.ext").write_text(_OAUTH2_CONF.format(url=oauth2))
        self.conf_path.write_text(
            CONFIG_TEMPLATE.format(
                tag=f"{self.imap_port}",
                root=self.root,
                log=self.log_path,
                identity=identity,
                ssl_dh=f"ssl_dh = <{dh}" if dh.exists() else "",
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                chroot=chroot,
                passwd_mechanisms="\n  mechanisms = plain login" if oauth2 else "",
                oauth2_mechanisms=" xoauth2 oauthbearer" if oauth2 else "",
                oauth2_passdb=_OAUTH2_PASSDB.format(root=self.root) if oauth2 else "",
            )
        )

    def _spawn(self) -> bool:
        """Run `dovecot -c CONF` (it daemonizes); True if the master came up."""
        with open(self.log_path, "ab") as log:
            # Dovecot keeps inherited stdout open: never give it a pipe.
            rc = subprocess.call(
                ["dovecot", "-c", str(self.conf_path)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_raise_nofile
            )
        return rc == 0

    def _bind_failed(self) -> bool:
        return "Address already in use" in self._log_tail()

    def _log_tail(self, n: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()[-n:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    # -- users and folders -----------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add (or update) one user; creates the user's maildir."""
        self.add_users({name: password})

    def add_users(self, users: dict[str, str]) -> None:
        """Add or update many users at once: one rewrite of the passwd-file, fast for thousands."""
        for name, password in users.items():
            _check_field(name, "user name")
            _check_field(password, "password")
        current = self.users()
        current.update(users)
        self._write_users(current)
        for name in users:
            self._make_maildir(self.mail_dir / name)

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password; the auth process rereads the file on its next lookup."""
        if name not in self.users():
            raise DovecotError(f"no such user: {name}")
        self.add_users({name: password})

    def users(self) -> dict[str, str]:
        """Current users and their plain-text passwords, in file order."""
        result: dict[str, str] = {}
        try:
            text = self.users_path.read_text()
        except FileNotFoundError:
            return result
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name:
                result[name] = rest.split(":", 1)[0].removeprefix("{PLAIN}")
        return result

    def _write_users(self, users: dict[str, str]) -> None:
        """Replace the passwd-file atomically, making sure Dovecot notices the change.

        Dovecot's auth process stats the file at most once per second and
        reloads it when mtime (seconds) or size changed. So bump the mtime
        if needed, and when running wait for the next second: any lookup after
        that sees the new file (adding users before start() avoids the wait).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            old_mtime = int(self.users_path.stat().st_mtime)
        except FileNotFoundError:
            old_mtime = -1
        tmp = self.users_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{n}:{{PLAIN}}{p}::::::\n" for n, p in users.items()))
        now = time.time()
        if int(now) <= old_mtime:
            os.utime(tmp, (now, old_mtime + 1))
        tmp.chmod(0o644)
        tmp.replace(self.users_path)
        if self.running():
            _next_second(now)

    def doveadm(self, *args: str) -> str:
        """Run doveadm against this instance and return its stdout."""
        proc = subprocess.run(["doveadm", "-c", str(self.conf_path), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this instance's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def _check_field(value: str, what: str) -> None:
    if not value or any(c in value for c in ":\n\r"):
        raise ValueError(f"{what} must be non-empty without ':' or newlines: {value!r}")
