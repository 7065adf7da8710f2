#!/usr/bin/env python3
"""Steady state: the Procfile farm on N idle mailboxes at a fixed interval, and the bare idle poll beside it.

Everything runs privately in a temporary directory (its own Dovecot, redis-server,
SQLite and blobs), with the Procfile's processes: one ``mailq scheduler`` and W
``mailq worker``. After every mailbox's first poll and a warm-up, it measures for
``--duration`` seconds (all CPU figures are user+sys of the processes, from
/proc/PID/stat, so other load on the machine changes wall times but barely the
per-poll CPU):

* polls per minute against the demand (N * 60 / interval);
* p50/p95/max gap between two polls of one mailbox (poll_run.started_at);
* CPU per poll of mailq's processes (scheduler + workers), of redis-server and
  of Dovecot, and their share of the machine (CPU seconds / wall / cores);

then stops the farm and runs, in the same run, the bare idle poll of the same N
mailboxes with W processes (imapclient: connect, login, STATUS, logout): its
client CPU and Dovecot's CPU per poll. ``--json FILE`` writes the figures
(keys documented in docs/bench.md); ``--smoke`` is a seconds-long CI size.
With ``--profile DIR`` py-spy records one worker and the scheduler during the
window (speedscope JSON and a flat text summary).

    scripts/bench_steady.py [--mailboxes 10000] [--workers 5] [--interval 60] [--duration 120] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.testbed.dovecot import Dovecot  # noqa: E402
from tests.testbed.redisd import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CSV_HEADER = "name,host,port,security,username,password,folders,interval,priority\n"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class SteadyError(RuntimeError):
    """A phase could not complete; the message says which and where the logs are."""


# -- CPU of process trees ------------------------------------------------------------------


def _fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(roots: list[int]) -> float:
    """utime+stime+cutime+cstime of ``roots`` and all their live descendants (reaped children are in cutime)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        f = _fields(int(entry.name))
        if f:
            parents.setdefault(int(f[1]), []).append(int(entry.name))
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        f = _fields(pid)
        if f:
            total += sum(int(x) for x in f[11:15])
        todo.extend(parents.get(pid, []))
    return total / TICK


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


def _stamp(epoch: float) -> str:
    """Epoch seconds as peewee stores a naive-UTC datetime in SQLite (comparable as text)."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat(sep=" ")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def percentile(values: list[float], pct: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# -- the bare baseline --------------------------------------------------------------------------


def _bare_chunk(job: tuple[int, list[str]]) -> tuple[int, float]:
    """Idle-poll each user once as plainly as imapclient allows; (polls, client CPU seconds)."""
    from imapclient import IMAPClient

    port, users = job
    cpu = time.process_time()
    for name in users:
        with IMAPClient("127.0.0.1", port, ssl=False, timeout=60) as client:
            client.login(name, f"pw-{name}")
            client.folder_status("INBOX", ["UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"])
            client.logout()
    return len(users), time.process_time() - cpu


def bare_cycle(bed: Bed, mailboxes: int, workers: int) -> dict:
    """One idle cycle of all N mailboxes with W processes: client and Dovecot CPU per poll."""
    names = [user(i) for i in range(1, mailboxes + 1)]
    chunks = [(bed.dovecot.imap_port, names[i::workers]) for i in range(workers)]
    # The children must die quietly on the pool's SIGTERM, not run our KeyboardInterrupt handler holding its lock.
    with multiprocessing.get_context("fork").Pool(workers, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        pool.map(abs, range(workers))  # processes up before the clock starts
        dcpu0, start = cpu_seconds(bed.dovecot_pids()), time.perf_counter()
        results = pool.map(_bare_chunk, chunks, chunksize=1)
        wall, dcpu = time.perf_counter() - start, cpu_seconds(bed.dovecot_pids()) - dcpu0
    polls, cpu = sum(r[0] for r in results), sum(r[1] for r in results)
    return {
        "polls": polls,
        "s": wall,
        "polls_per_s": polls / wall,
        "client_cpu_s": cpu,
        "client_cpu_ms_per_poll": cpu * 1000 / polls,
        "dovecot_cpu_ms_per_poll": dcpu * 1000 / polls,
        "what": f"{workers} processes, imapclient: connect, LOGIN, STATUS INBOX, LOGOUT, once per mailbox",
    }


# -- the farm ---------------------------------------------------------------------------------------


def setup(bed: Bed, mailboxes: int, interval: int) -> None:
    bed.dovecot.add_users({user(i): f"pw-{user(i)}" for i in range(1, mailboxes + 1)})
    bed.dovecot.start()
    bed.redis.start()
    bed.env["MAILQ_REDIS_URL"] = bed.redis.url
    csv = bed.root / "mailboxes.csv"
    with open(csv, "w") as f:
        f.write(CSV_HEADER)
        for i in range(1, mailboxes + 1):
            f.write(f"{user(i)},127.0.0.1,{bed.dovecot.imap_port},plain,{user(i)},pw-{user(i)},INBOX,{interval},normal\n")
    bed.mailq("db", "upgrade")
    bed.mailq("mailbox", "import", str(csv))


def start_farm(bed: Bed, workers: int) -> None:
    """The Procfile: ``mailq scheduler`` and W ``mailq worker``."""
    for i in range(1, workers + 1):
        bed.spawn(f"worker-{i}", "worker")
    bed.spawn("scheduler", "scheduler")


def polled_mailboxes(bed: Bed) -> int:
    with bed.db() as conn:
        return conn.execute("SELECT count(DISTINCT mailbox_id) FROM poll_run WHERE finished_at IS NOT NULL").fetchone()[0]


def failed_jobs(bed: Bed) -> int:
    import redis
    from rq import Queue
    from rq.registry import FailedJobRegistry

    from mailq.queues import QUEUE_NAMES

    conn = redis.Redis.from_url(bed.redis.url)
    return sum(FailedJobRegistry(queue=Queue(n, connection=conn)).count for n in QUEUE_NAMES)


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


def measure(bed: Bed, mailboxes: int, workers: int, interval: int, duration: float, profile_dir: Path | None) -> dict:
    names = {"scheduler": ["scheduler"], "workers": [f"worker-{i}" for i in range(1, workers + 1)]}

    def snapshot() -> dict[str, float]:
        cpu = {k: cpu_seconds([bed.procs[n].pid for n in v]) for k, v in names.items()}
        cpu["redis"] = cpu_seconds([bed.redis._proc.pid]) if bed.redis._proc else 0.0
        cpu["dovecot"] = cpu_seconds(bed.dovecot_pids())
        cpu["machine"] = machine_busy_seconds()
        return cpu

    failed0 = failed_jobs(bed)
    spies = profile(bed, duration, profile_dir) if profile_dir else []
    t0, c0 = time.time(), snapshot()
    end = time.monotonic() + duration
    while time.monotonic() < end:
        bed.check_alive()
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    t1, c1 = time.time(), snapshot()
    for spy in spies:
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
    cpu = {k: c1[k] - c0[k] for k in c0}
    profiles = {name: breakdown(profile_dir / f"{name}.txt") for name in ("worker-1", "scheduler")} if profile_dir else None
    with bed.db() as conn:
        rows = conn.execute(
            "SELECT mailbox_id, started_at, outcome FROM poll_run WHERE started_at >= ? AND started_at < ? ORDER BY mailbox_id, started_at",
            (_stamp(t0 - 3 * interval), _stamp(t1)),
        ).fetchall()
    polls = [(m, _epoch(s), o) for m, s, o in rows if _epoch(s) >= t0]
    gaps, last = [], {}
    for m, s, _ in ((m, _epoch(s), o) for m, s, o in rows):
        if m in last and s >= t0:
            gaps.append(s - last[m])
        last[m] = s
    n = len(polls)
    window = t1 - t0
    cores = os.cpu_count() or 1
    mailq_cpu = cpu["scheduler"] + cpu["workers"]

    def per_poll(seconds: float) -> float | None:
        return seconds * 1000 / n if n else None

    return {
        "window_s": window,
        "polls": n,
        "polls_per_min": n * 60 / window,
        "demand_polls_per_min": mailboxes * 60 / interval,
        "keeps_up": n * 60 / window >= 0.97 * mailboxes * 60 / interval,
        "not_ok_polls": sum(1 for *_, o in polls if o not in ("ok", "running")),
        "mailboxes_polled": len({m for m, *_ in polls}),
        "gap_p50_s": percentile(sorted(gaps), 50) if gaps else None,
        "gap_p95_s": percentile(sorted(gaps), 95) if gaps else None,
        "gap_max_s": max(gaps) if gaps else None,
        "gaps": len(gaps),
        "cpu_s": cpu,
        "cpu_ms_per_poll": {
            "mailq": per_poll(mailq_cpu),
            "scheduler": per_poll(cpu["scheduler"]),
            "workers": per_poll(cpu["workers"]),
            "redis": per_poll(cpu["redis"]),
            "dovecot": per_poll(cpu["dovecot"]),
        },
        "machine_share": {
            "mailq": mailq_cpu / window / cores,
            "redis": cpu["redis"] / window / cores,
            "dovecot": cpu["dovecot"] / window / cores,
            "whole_machine_busy": cpu["machine"] / window / cores,
        },
        "failed_jobs": failed_jobs(bed) - failed0,
        "profile_share": profiles,
    }


def run(args, bed: Bed) -> dict:
    log(f"bed: {args.mailboxes} idle mailboxes at {args.interval}s, {args.workers} workers")
    setup(bed, args.mailboxes, args.interval)
    start_farm(bed, args.workers)
    started = time.monotonic()
    wait_until(lambda: polled_mailboxes(bed) >= args.mailboxes, "every mailbox's first poll", 60 + args.mailboxes / 8, bed)
    first_s = time.monotonic() - started
    log(f"first polls of all {args.mailboxes} mailboxes done in {first_s:.1f}s; warming up {args.warmup:.0f}s")
    time.sleep(args.warmup)
    bed.check_alive()
    log(f"measuring for {args.duration:.0f}s")
    steady = measure(bed, args.mailboxes, args.workers, args.interval, args.duration, args.profile)
    log(f"steady: {steady['polls_per_min']:.0f} polls/min of {steady['demand_polls_per_min']:.0f}, p95 gap {steady['gap_p95_s']}")
    bed.stop_farm()
    log("baseline: bare idle polls")
    bare = bare_cycle(bed, args.mailboxes, args.workers)
    mailq_ms = steady["cpu_ms_per_poll"]["mailq"]
    return {
        "params": {
            "mailboxes": args.mailboxes,
            "workers": args.workers,
            "interval_s": args.interval,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
        },
        "machine": {"cpus": os.cpu_count(), "note": "Dovecot, Redis and mailq share these cores; other load may run too"},
        "first_polls_s": first_s,
        "steady": steady,
        "bare": bare,
        "ratios": {
            "mailq_vs_bare_client_cpu": mailq_ms / bare["client_cpu_ms_per_poll"] if mailq_ms else None,
            "dovecot_mailq_vs_bare": (steady["cpu_ms_per_poll"]["dovecot"] or 0) / bare["dovecot_cpu_ms_per_poll"]
            if bare["dovecot_cpu_ms_per_poll"]
            else None,
        },
    }


def render(doc: dict) -> str:
    s, b, p = doc["steady"], doc["bare"], doc["params"]
    ms = s["cpu_ms_per_poll"]
    share = s["machine_share"]

    def f(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    return "\n".join(
        [
            f"steady state: {p['mailboxes']} idle mailboxes every {p['interval_s']}s, scheduler + {p['workers']} workers, "
            f"{s['window_s']:.0f}s window",
            f"  polls/min            {s['polls_per_min']:.0f} of {s['demand_polls_per_min']:.0f} demanded",
            f"  gap between polls    p50 {f(s['gap_p50_s'])} s, p95 {f(s['gap_p95_s'])} s, max {f(s['gap_max_s'])} s",
            f"  CPU per poll         mailq {f(ms['mailq'])} ms (scheduler {f(ms['scheduler'])}, workers {f(ms['workers'])}), "
            f"redis {f(ms['redis'])} ms, Dovecot {f(ms['dovecot'])} ms",
            f"  share of machine     mailq {share['mailq']:.1%}, redis {share['redis']:.1%}, Dovecot {share['dovecot']:.1%} "
            f"(whole machine busy {share['whole_machine_busy']:.1%})",
            f"  bare idle poll       client {b['client_cpu_ms_per_poll']:.2f} ms, Dovecot {b['dovecot_cpu_ms_per_poll']:.2f} ms per poll "
            f"({b['polls_per_s']:.0f} polls/s)",
            f"  failed jobs {s['failed_jobs']}, polls not ok {s['not_ok_polls']}",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench_steady.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=None, help="N idle mailboxes (default 10000)")
    parser.add_argument("--workers", type=int, default=None, help="W workers (default 5, the Procfile farm)")
    parser.add_argument("--interval", type=int, default=None, help="poll interval in seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds after the first polls before measuring (default 60)")
    parser.add_argument("--duration", type=float, default=None, help="seconds measured (default 120)")
    parser.add_argument("--smoke", action="store_true", help="CI size: 20 mailboxes, 2 workers, 3 s interval, 8 s window")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy a worker and the scheduler into this directory")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument("--mailq-path", type=Path, default=REPO, help="run the farm on the mailq package found here (e.g. an older tree)")
    args = parser.parse_args(argv)
    defaults = (
        {"mailboxes": 20, "workers": 2, "interval": 3, "warmup": 3.0, "duration": 8.0}
        if args.smoke
        else {"mailboxes": 10000, "workers": 5, "interval": 60, "warmup": 60.0, "duration": 120.0}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.mailboxes, args.workers, args.interval) < 1 or args.duration <= 0:
        parser.error("--mailboxes, --workers, --interval and --duration must be positive")
    return args


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="mqs-"))  # short: Dovecot's unix sockets live under it (108-byte limit)
    bed = Bed(root, args.mailq_path)
    try:
        doc = run(args, bed)
    except SteadyError as exc:
        print(f"bench_steady failed: {exc}" + ("" if args.keep else " (rerun with --keep to keep the logs)"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        bed.close()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(render(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
