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
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from tests.testbed.steady import (  # noqa: E402
    CSV_HEADER,
    Bed,
    SteadyError,
    breakdown,
    cpu_seconds,
    log,
    machine_busy_seconds,
    profile,
    user,
    wait_until,
)


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

    polled = len({m for m, *_ in polls})
    ordered = sorted(gaps)
    p95 = percentile(ordered, 95) if gaps else None
    return {
        "window_s": window,
        "polls": n,
        "polls_per_min": n * 60 / window,
        "demand_polls_per_min": mailboxes * 60 / interval,
        # every mailbox polled about once an interval (N x 60 / interval a minute is never quite
        # reached: a poll's next run is a whole second at least one interval after it started)
        "keeps_up": polled == mailboxes and p95 is not None and p95 <= interval + max(3.0, 0.05 * interval),
        "not_ok_polls": sum(1 for *_, o in polls if o not in ("ok", "running")),
        "mailboxes_polled": polled,
        "gap_p50_s": percentile(ordered, 50) if gaps else None,
        "gap_p95_s": p95,
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
