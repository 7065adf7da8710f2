"""The benchmark's phases: two baselines (bare IMAP loop, sequential poller) and the farm's
first ingest, new-mail latency and idle cycles; each returns its figures as a dict."""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from imapclient import IMAPClient

from tests.testbed.accounts import password_for, user_name
from tests.testbed.bench_bed import (
    BenchError,
    Farm,
    console,
    epoch,
    failed_polls,
    farm_quiet,
    query,
    redis_client,
    set_next_runs,
    wait_count,
    wait_until,
    write_csv,
)
from tests.testbed.feeder import FeederThread
from tests.testbed.procs import tree_cpu

IDLE_INTERVAL = 60
"""Interval the idle phase runs at: the product default, and the budget a cycle must fit in."""


def _bare_one(job: tuple[int, str, int]) -> tuple[int, int, float]:
    """Log in to one mailbox and fetch every message's raw bytes; nothing is parsed or kept.

    Returns (messages, bytes, CPU seconds this took in the client).
    """
    port, user, batch = job
    count = size = 0
    cpu = time.process_time()
    with IMAPClient("127.0.0.1", port, ssl=False, timeout=60) as client:
        client.login(user, password_for(user))
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for i in range(0, len(uids), batch):
            for data in client.fetch(uids[i : i + batch], ["BODY.PEEK[]"]).values():
                count += 1
                size += len(data[b"BODY[]"])
        client.logout()
    return count, size, time.process_time() - cpu


def bare_loop(bed, mailboxes: int, workers: int, batch: int, runs: int = 2) -> dict:
    """Best of `runs` passes (the first also warms Dovecot's caches, as it would for mailq)."""
    jobs = [(bed.dovecot.imap_port, user_name(i), batch) for i in range(1, mailboxes + 1)]
    best = None
    with multiprocessing.get_context("fork").Pool(workers, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        pool.map(abs, range(workers))  # processes up before the clock starts
        for _ in range(runs):
            start = time.perf_counter()
            results = pool.map(_bare_one, jobs, chunksize=1)
            elapsed = time.perf_counter() - start
            if best is None or elapsed < best["s"]:
                count, size = sum(r[0] for r in results), sum(r[1] for r in results)
                best = {"s": elapsed, "messages": count, "bytes": size, "cpu_s": sum(r[2] for r in results)}
    best["msgs_per_s"] = best["messages"] / best["s"]
    best["what"] = f"{workers} processes, login + FETCH BODY.PEEK[] in batches of {batch}, no parse/store; best of {runs}"
    return best


_SEQUENTIAL = """
import json, resource, time
from mailq import config, db
from mailq.models import Mailbox
from mailq.poll import poll_mailbox
settings = config.load(env_file=None); config.use(settings); db.bind(settings.database_url)
ids = [m.id for m in Mailbox.select(Mailbox.id).order_by(Mailbox.id)]
start = time.perf_counter(); new = 0
for mailbox_id in ids:
    new += poll_mailbox(settings, mailbox_id).new
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": elapsed, "messages": new, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def sequential(bed, csv: Path, expected: int) -> dict:
    """mailq's own poll, one mailbox after another, in a single process (the seed's old shape)."""
    bed.mailq("seq", "db", "upgrade")
    bed.mailq("seq", "mailbox", "import", str(csv))
    proc = subprocess.run(
        [sys.executable, "-c", _SEQUENTIAL], env=bed.env("seq"), cwd=bed.root, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise BenchError(f"sequential poller failed: {proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["messages"] != expected:
        raise BenchError(f"sequential poller stored {result['messages']} messages, expected {expected}")
    result["msgs_per_s"] = result["messages"] / result["s"]
    result["what"] = "one process, mailq's poll_mailbox for each mailbox in turn (fetch, parse, store)"
    return result


def first_ingest(farm: Farm, total: int, size: int) -> dict:
    bed, conn = farm.bed, redis_client(farm.bed)
    cpu0, dcpu0, failed0 = farm.cpu(), tree_cpu(bed.dovecot_pids()), failed_polls(conn)
    start = time.time()
    due = set_next_runs(conn, lambda i: start)
    end = wait_count(
        "first ingest",
        lambda: farm.check_alive() or query(bed, farm.var, "SELECT count(*) FROM message")[0][0],
        total,
        timeout=max(120, total / 5),
    )
    elapsed = end - start
    return {
        "s": elapsed,
        "messages": total,
        "msgs_per_s": total / elapsed,
        "mb_per_s": size / elapsed / 1e6,
        "mailboxes_due": due,
        "cpu_s": farm.cpu() - cpu0,
        "dovecot_cpu_s": tree_cpu(bed.dovecot_pids()) - dcpu0,
        "failed_polls": len(failed_polls(conn).keys() - failed0.keys()),
    }


def latency(farm: Farm, users: list[str], interval: int, intervals: int, rate: float) -> dict:
    """Feed new mail at random times for a few intervals; append -> stored row for each message."""
    bed, conn = farm.bed, redis_client(farm.bed)
    wait_until(lambda: farm_quiet(conn), "the farm to go quiet", 120)
    failed0 = failed_polls(conn)
    now = time.time()
    rng = random.Random(7)
    set_next_runs(conn, lambda i: now + rng.uniform(0, interval))
    feeder = FeederThread(bed.dovecot, users, rate, seed=8)
    feeder.start()
    with console.status(f"latency: feeding new mail for {intervals} x {interval}s"):
        time.sleep(interval * intervals)
    sent = {d.message_id: d.t for d in feeder.stop()}
    if not sent:
        raise BenchError("the feeder delivered nothing")

    def stored() -> dict[str, float]:
        rows = query(bed, farm.var, "SELECT message_id, created_at FROM message WHERE message_id LIKE '<feed-%'")
        return {mid: epoch(created) for mid, created in rows if mid in sent}

    wait_count(
        "latency: waiting for the last fed messages", lambda: farm.check_alive() or len(stored()), len(sent), timeout=interval * 3 + 60
    )
    delays = sorted(stored()[mid] - t for mid, t in sent.items())
    return {
        "p50_s": percentile(delays, 50),
        "p95_s": percentile(delays, 95),
        "max_s": delays[-1],
        "samples": len(delays),
        "interval_s": interval,
        "rate_per_s": rate,
        "failed_polls": len(failed_polls(conn).keys() - failed0.keys()),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(pct) - 1]


def settle(conn, timeout: float) -> bool:
    """Wait for the farm to go quiet; False (with a warning) if it never does: it is not keeping up."""
    try:
        wait_until(lambda: farm_quiet(conn), "the farm to go quiet", timeout)
        return True
    except BenchError:
        console.log(
            f"[yellow]the farm still has polls queued or running after {timeout:.0f}s: "
            "it is not keeping up with its interval; measuring anyway[/]"
        )
        return False


def idle_cycle(farm: Farm, size: int) -> dict:
    """All `size` mailboxes due at once, no new mail: wall time until each has a finished poll run, and CPU.

    A poll that crashes (failed registry) also ends its mailbox's part of the
    cycle; the count is reported, since it means the cycle was not clean.
    """
    bed, conn = farm.bed, redis_client(farm.bed)
    quiet = settle(conn, 90)
    before = query(bed, farm.var, "SELECT coalesce(max(id), 0) FROM poll_run")[0][0]
    cpu0, dcpu0, failed0 = farm.cpu(), tree_cpu(bed.dovecot_pids()), failed_polls(conn)
    start = time.time()
    due = set_next_runs(conn, lambda i: start)
    if due != size:
        raise BenchError(f"idle cycle: {due} mailboxes scheduled, expected {size}")
    sql = "SELECT DISTINCT mailbox_id FROM poll_run WHERE id > ? AND finished_at IS NOT NULL"

    def done() -> int:
        farm.check_alive()
        failed = {mid for job, mid in failed_polls(conn).items() if job not in failed0}
        return len({r[0] for r in query(bed, farm.var, sql, (before,))} | failed)

    end = wait_count(f"idle cycle, {size} mailboxes", done, size, timeout=600)
    new = query(bed, farm.var, "SELECT coalesce(sum(new_count), 0) FROM poll_run WHERE id > ?", (before,))[0][0]
    cpu = farm.cpu() - cpu0
    return {
        "s": end - start,
        "cpu_s": cpu,
        "dovecot_cpu_s": tree_cpu(bed.dovecot_pids()) - dcpu0,
        "mailboxes": size,
        "new_messages": new,
        "interval_s": IDLE_INTERVAL,
        "started_quiet": quiet,
        "failed_polls": len(failed_polls(conn).keys() - failed0.keys()),
    }


def grow_farm(farm: Farm, size: int, have: int) -> None:
    """Import mailboxes up to `size` at the idle interval and give the new ones their first (untimed) sync."""
    bed = farm.bed
    csv = write_csv(bed.root / f"idle-{size}.csv", bed.dovecot.imap_port, 1, size, IDLE_INTERVAL)
    bed.mailq(farm.var, "mailbox", "import", str(csv))
    bed.mailq(farm.var, "schedule", "sync")
    if size > have:
        idle_cycle(farm, size)  # warm-up: first sync of the new, empty mailboxes
