"""Processes of a private farm: the one /proc walk, supervised children that are always killed,
and private servers (redis-server, moto) started and waited for.

Every farm process runs in its own session, so a SIGKILL of its process group
also kills an RQ work-horse mid-poll (the "machine died" case), and teardown
kills whole groups plus any descendant that escaped them, on failure too. A
``Supervisor`` thread restarts processes that are wanted but dead (like
systemd's Restart=always), after an optional hold-down, and counts exits
nobody asked for (``crashes``). Used by tests/farm_helpers.py, the chaos suite
and the benchmark.
"""

from __future__ import annotations

import compileall
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.testbed.net import free_port
from tests.testbed.waiting import wait_for

TERM_GRACE = 10.0
"""Seconds a process gets after SIGTERM before its group is SIGKILLed."""
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def compile_code(code: Path) -> None:
    """Byte-compile a mailq tree once, as ``pip install`` does for a user.

    An editable install has no bytecode, and with ``PYTHONDONTWRITEBYTECODE`` (set on
    this machine) every farm process would compile mailq from source again at start:
    nine processes doing it at once on two cores add about a second to a farm's start.
    """
    for package in ("mailq", "console"):
        compileall.compile_dir(str(code / package), quiet=1)


def mailq_argv(*args: str) -> list[str]:
    """The command line of ``mailq ARGS`` with this interpreter."""
    return [sys.executable, "-m", "mailq", *args]


# -- /proc ---------------------------------------------------------------------------------


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children_map() -> dict[int, list[int]]:
    """Parent pid -> its live (not zombie) children, for every process on the machine."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = stat_fields(int(entry.name))
        if fields and fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def children(pid: int) -> list[int]:
    return children_map().get(pid, [])


def descendants(pid: int) -> list[int]:
    tree, found, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True if pid is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = stat_fields(pid)
    return fields is None or fields[0] != "Z"


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user+sys) of the processes, their live descendants and every child they reaped
    (utime+stime+cutime+cstime: a work-horse that already exited counts in its worker's cutime)."""
    tree, total, seen = children_map(), 0, set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = stat_fields(pid)
        if fields:
            total += sum(int(x) for x in fields[11:15])
        todo.extend(tree.get(pid, []))
    return total / TICK


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (/proc/PID/statm)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- private servers -----------------------------------------------------------------------


def start_server(
    argv: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    error: type[Exception] = TimeoutError,
    interval: float = 0.02,
    **popen,
) -> subprocess.Popen:
    """Start a private server (redis-server, moto...) logging to ``log_path`` and return once ``ready()``.

    If it exits first, ``error`` says so with its log's tail; if it is not ready within
    ``timeout`` seconds, it is killed (its group, with ``start_new_session``) and ``error`` raised.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **popen)
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout, what, interval, error)
    except BaseException:
        _signal(proc.pid, signal.SIGKILL, group=popen.get("start_new_session", False))
        proc.wait()
        raise
    if proc.poll() is not None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise error(f"{what} exited on start ({proc.returncode}):\n{tail}")
    return proc


class PrivateServer:
    """A server child process on 127.0.0.1:``port`` (a free port by default), its files and ``LOG`` under ``root``."""

    LOG = "server.log"

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root).absolute()
        self.port = port or free_port()
        self.log_path = self.root / self.LOG
        self._proc: subprocess.Popen | None = None

    def _launch(self, argv: list[str], ready: Callable[[], bool], what: str, timeout: float, **options) -> None:
        """``start_server`` as this server's process (``options``: error, interval, Popen's)."""
        self._proc = start_server(argv, self.log_path, ready, what, timeout, **options)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


# -- farm processes ------------------------------------------------------------------------


class Proc:
    """One farm process (``argv`` is the full command line) logging to ``log_dir/NAME.log``; restartable."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path):
        self.name, self.argv, self.env, self.log_dir, self.cwd = name, argv, env, Path(log_dir), Path(cwd)
        self.popen: subprocess.Popen | None = None
        self.wanted = False
        self.hold_until = 0.0
        self.starts = self.kills = self.crashes = 0
        self._expect_exit = False
        self.lock = threading.Lock()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        with self.lock:
            if self.alive():
                return self
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== start {self.starts + 1} at {time.time():.3f} ===\n".encode())
                log.flush()
                self.popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.starts += 1
            self.wanted, self._expect_exit = True, False
        return self

    def busy(self) -> bool:
        """True if the process has a child right now (an RQ work-horse running a job)."""
        return self.pid is not None and bool(children(self.pid))

    def kill(self, sig: int = signal.SIGKILL, hold: float = 0.0, group: bool = True) -> None:
        """Signal the process (its group by default) and every descendant that left the group
        (RQ's work-horse runs in its own session); a supervisor restarts it after ``hold`` seconds."""
        with self.lock:
            if not self.alive():
                return
            self._expect_exit = True
            self.hold_until = time.monotonic() + hold
            self.kills += 1
            escaped = descendants(self.popen.pid) if group else []
            _signal(self.popen.pid, sig, group)
            for pid in escaped:
                _signal(pid, sig, group=False)
            self.popen.wait(10)

    def stop(self, grace: float = TERM_GRACE) -> None:
        """Not wanted any more: SIGTERM the group (warm shutdown), SIGKILL it after ``grace`` seconds,
        and SIGKILL descendants orphaned out of it."""
        with self.lock:
            self.wanted, self._expect_exit = False, True
            if self.popen is None:
                return
            leftovers = descendants(self.popen.pid)
            if self.popen.poll() is None:
                _signal(self.popen.pid, signal.SIGTERM, group=True)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            _signal(self.popen.pid, signal.SIGKILL, group=True)
            for pid in leftovers:
                _signal(pid, signal.SIGKILL, group=False)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def check(self) -> None:
        """Supervisor step: note an unexpected exit and restart a wanted process when its hold-down is over."""
        if not self.wanted or self.alive():
            return
        if self.popen is not None and not self._expect_exit:
            self.crashes += 1
            self._expect_exit = True
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== exited by itself with {self.popen.returncode} at {time.time():.3f} ===\n".encode())
            self.hold_until = time.monotonic() + 0.5  # like systemd's RestartSec
        if time.monotonic() >= self.hold_until:
            self.start()

    def log_text(self, tail: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail:] if tail else text


def stop_all(procs: list[Proc], grace: float = TERM_GRACE) -> None:
    """Warm-stop every process at once, then wait: one after another would take N x grace."""
    for p in procs:
        p.wanted = False
    threads = [threading.Thread(target=p.stop, args=(grace,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(grace + 10)


class Supervisor:
    """Restarts wanted-but-dead processes every 100 ms, on a daemon thread."""

    def __init__(self):
        self.processes: list[Proc] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, process: Proc) -> Proc:
        self.processes.append(process)
        return process

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="farm-supervisor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for p in list(self.processes):
                try:
                    p.check()
                except OSError:
                    pass

    def stop_all(self, grace: float = TERM_GRACE) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        stop_all(self.processes, grace)

    @property
    def crashes(self) -> int:
        return sum(p.crashes for p in self.processes)

    @property
    def kills(self) -> int:
        return sum(p.kills for p in self.processes)
