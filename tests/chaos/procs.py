"""Farm processes (scheduler, workers) as real child processes, supervised like systemd would.

Each process runs in its own session so a SIGKILL of its process group also
kills an RQ work-horse mid-poll: the "machine died" case. A supervisor thread
restarts processes that are wanted but dead (Restart=always), after an
optional hold-down, and counts exits we did not cause (`crashes`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

TERM_GRACE = 10.0
"""Seconds a process gets after SIGTERM before the group is SIGKILLed."""


def _children(pid: int) -> list[int]:
    """Live child pids of pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


class FarmProcess:
    """One farm process (argv is the full command line) with its log file; restartable."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.wanted = False
        self.hold_until = 0.0
        self.starts = 0
        self.kills = 0
        self.crashes = 0
        self._expect_exit = False
        self.lock = threading.Lock()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.lock:
            if self.alive():
                return
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== start {self.starts + 1} at {time.time():.3f} ===\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.starts += 1
            self.wanted = True
            self._expect_exit = False

    def busy(self) -> bool:
        """True if the process has a child right now (an RQ work-horse running a job)."""
        return self.pid is not None and bool(_children(self.pid))

    def sigkill(self, hold: float = 0.0, group: bool = True) -> None:
        """SIGKILL the process (its group by default); the supervisor restarts it after `hold` seconds."""
        with self.lock:
            if not self.alive():
                return
            self._expect_exit = True
            self.hold_until = time.monotonic() + hold
            self.kills += 1
            try:
                if group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self, grace: float = TERM_GRACE) -> None:
        """Not wanted any more: SIGTERM (warm shutdown), then SIGKILL the group after `grace` seconds."""
        with self.lock:
            self.wanted = False
            self._expect_exit = True
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            try:  # also an orphaned work-horse left in the group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def check(self) -> None:
        """Supervisor step: note an unexpected exit and restart a wanted process when its hold-down is over."""
        if not self.wanted or self.alive():
            return
        if self.proc is not None and not self._expect_exit:
            self.crashes += 1
            self._expect_exit = True
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== exited by itself with {self.proc.returncode} at {time.time():.3f} ===\n".encode())
            self.hold_until = time.monotonic() + 0.5  # like systemd's RestartSec
        if time.monotonic() >= self.hold_until:
            self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Supervisor:
    """Restarts wanted-but-dead processes every 100 ms, on a daemon thread."""

    def __init__(self):
        self.processes: list[FarmProcess] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, process: FarmProcess) -> FarmProcess:
        self.processes.append(process)
        return process

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chaos-supervisor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for p in list(self.processes):
                try:
                    p.check()
                except OSError:
                    pass

    def stop_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        # Warm-stop all at once, then wait: a sequential stop would take W x grace.
        for p in self.processes:
            p.wanted = False
        threads = [threading.Thread(target=p.stop) for p in self.processes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TERM_GRACE + 10)

    @property
    def crashes(self) -> int:
        return sum(p.crashes for p in self.processes)

    @property
    def kills(self) -> int:
        return sum(p.kills for p in self.processes)
