"""The steady-state benchmark's private farm: the harness's bed on one var dir, process CPU from /proc
and the py-spy breakdown (scripts/bench_steady.py drives it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed import bench_bed
from tests.testbed.accounts import CSV_HEADER  # noqa: F401  (scripts/bench_steady.py takes it from here)
from tests.testbed.bench_bed import REPO, BenchError
from tests.testbed.procs import TICK, Proc, stop_all, tree_cpu
from tests.testbed.waiting import wait_for


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


SteadyError = BenchError
"""A phase could not complete; the message says which and where the logs are (the harness's BenchError)."""


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
    """The harness's bed (tests/testbed/bench_bed.Bed) on one var dir, with the farm's processes by name.

    ``env`` is that var dir's environment (what ``mailq`` and ``spawn`` run with);
    close() stops the processes, Redis and Dovecot.
    """

    VAR = "var"

    def __init__(self, root: Path, code: Path = REPO):
        self.root = root
        self.bed = bench_bed.Bed(root, {"MAILQ_LOG_LEVEL": "INFO"}, code=code)  # INFO: the product default, as under the Procfile
        self.logs, self.dovecot, self.redis = self.bed.logs, self.bed.dovecot, self.bed.redis
        self.env = self.bed.env(self.VAR)
        self.procs: dict[str, Proc] = {}

    def mailq(self, *args: str, timeout: float = 900) -> str:
        return self.bed.mailq(self.VAR, *args, timeout=timeout, attempts=1)

    def spawn(self, name: str, *args: str) -> Proc:
        self.procs[name] = self.bed.spawn(name, self.VAR, *args)
        return self.procs[name]

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if not p.alive():
                raise SteadyError(f"{name} exited with {p.popen.returncode}: see {p.log_path}")

    def stop_farm(self, grace: float = 15.0) -> None:
        stop_all(list(self.procs.values()), grace)

    def dovecot_pids(self) -> list[int]:
        return self.bed.dovecot_pids()

    def db(self):
        return self.bed.sqlite(self.VAR, timeout=30)

    def close(self) -> None:
        self.stop_farm()
        self.bed.close()


def wait_until(predicate, what: str, timeout: float, bed: Bed | None = None) -> None:
    """Poll ``predicate`` every 0.25 s (and check ``bed``'s processes are alive); SteadyError after ``timeout``."""

    def ready():
        if bed is not None:
            bed.check_alive()
        return predicate()

    wait_for(ready, timeout, what, interval=0.25, error=SteadyError)


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
