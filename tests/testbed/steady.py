"""The steady-state benchmark's private farm: its bed, process CPU from /proc and the py-spy breakdown (scripts/bench_steady.py drives it)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed.dovecot import Dovecot
from tests.testbed.procs import TICK, tree_cpu
from tests.testbed.redisd import RedisServer

REPO = Path(__file__).resolve().parents[2]
CSV_HEADER = "name,host,port,security,username,password,folders,interval,priority\n"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class SteadyError(RuntimeError):
    """A phase could not complete; the message says which and where the logs are."""


# -- CPU of process trees ------------------------------------------------------------------


cpu_seconds = tree_cpu
"""CPU seconds of process trees: the harness's one /proc walk."""


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all processes, ours and others'), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


# -- the bed ---------------------------------------------------------------------------------


def user(i: int) -> str:
    return f"idle{i:05d}"


class Bed:
    """Dovecot, Redis, mailq's var dir and the farm's processes under one root; close() stops them all."""

    def __init__(self, root: Path, code: Path = REPO):
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.dovecot = Dovecot(root / "dovecot")
        self.redis = RedisServer(root / "redis")
        self.procs: dict[str, subprocess.Popen] = {}
        from cryptography.fernet import Fernet

        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONPATH": str(code.resolve()),
            "MAILQ_VAR_DIR": str(root / "var"),
            "MAILQ_DATABASE_URL": f"sqlite:///{root / 'var' / 'mailq.db'}",
            "MAILQ_STORAGE_URL": f"file://{root / 'var' / 'blobs'}",
            "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
            "MAILQ_LOG_LEVEL": "INFO",  # the product default, as under the Procfile
        }

    def mailq(self, *args: str, timeout: float = 900) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "mailq", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise SteadyError(f"mailq {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        return proc.stdout

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "mailq", *args],
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = popen
        return popen

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise SteadyError(f"{name} exited with {p.returncode}: see {self.logs / name}.log")

    def stop_farm(self, grace: float = 15.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            live = [p for p in self.procs.values() if p.poll() is None]
            for p in live:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5)
            while any(p.poll() is None for p in live) and time.monotonic() < deadline:
                time.sleep(0.05)

    def dovecot_pids(self) -> list[int]:
        try:
            return [int((self.dovecot.base_dir / "master.pid").read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.root / 'var' / 'mailq.db'}?mode=ro", uri=True, timeout=30)

    def close(self) -> None:
        self.stop_farm()
        self.redis.stop()
        if self.dovecot.running():
            self.dovecot.stop()


def wait_until(predicate, what: str, timeout: float, bed: Bed | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if bed is not None:
            bed.check_alive()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise SteadyError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def profile(bed: Bed, seconds: float, out: Path) -> list[subprocess.Popen]:
    """py-spy on worker-1 and the scheduler for the window (needs ptrace; a failure is logged, not fatal).

    ``--gil`` samples only while a thread holds the GIL (Python CPU, not waits on
    sockets); ``--nonblocking`` never pauses the target. Sampling still costs CPU
    on the same cores: measure figures without ``--profile``.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    started = []
    for name in ("worker-1", "scheduler"):
        pid = bed.procs[name].pid
        for fmt, ext in (("speedscope", "json"), ("raw", "txt")):
            cmd = [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "100",
                "--nonblocking",
                "--gil",
                "-f",
                fmt,
                "-o",
                str(out / f"{name}.{ext}"),
            ]
            started.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(bed.logs / f"py-spy-{name}-{fmt}.log", "wb")))
    return started


_RQ_PHASES = (
    ("dequeue_job_and_maintain_ttl", "RQ: dequeue (BLMOVE/LMOVE, job fetch)"),
    ("heartbeat", "RQ: worker heartbeats"),
    ("prepare_execution", "RQ: execution set-up (registries)"),
    ("prepare_job_execution", "RQ: execution set-up (registries)"),
    ("handle_job_success", "RQ: success (registries, job delete)"),
    ("_finalize_success", "RQ: success (registries, job delete)"),
)


def breakdown(raw: Path) -> dict[str, float]:
    """Share of samples per part of the poll, from py-spy's raw (collapsed) output.

    Each sample goes to the innermost frame that names a part: SQL (peewee), the
    IMAP exchange (imapclient/imaplib/mailq.imap), a Redis call made by mailq's
    own code, mailq's other code, logging, or the RQ phase it ran in.
    """
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        part, via_redis = "other (interpreter, RQ's loop)", False
        for frame in reversed(frames):
            if "redis/" in frame:
                via_redis = True
            elif "peewee.py" in frame:
                part = "database (peewee + SQLite)"
                break
            elif "imapclient" in frame or "imaplib.py" in frame or "mailq/imap.py" in frame:
                part = "IMAP exchange (imapclient)"
                break
            elif "logging/" in frame:
                part = "logging"
                break
            elif "threading.py" in frame and any("mailq/" in f for f in frames):
                part = "mailq: threads (claim renewer)"
                break
            elif "mailq/" in frame and "mailq/worker.py" not in frame and "mailq/cli/" not in frame and "mailq/__main__" not in frame:
                part = "mailq: Redis (claim, schedule, enqueue)" if via_redis else "mailq: own code"
                break
            elif "rq/" in frame or "rq_scheduler/" in frame:
                name = frame.split(" (", 1)[0].rsplit(".", 1)[-1]
                phase = next((label for fn, label in _RQ_PHASES if fn == name), None)
                if phase:
                    part = phase
                    break
                if "rq_scheduler/" in frame:
                    part = "rq-scheduler (due jobs, templates)"
                    break
        counts[part] = counts.get(part, 0) + int(n)
        total += int(n)
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}
