"""The benchmark's report: the JSON document (headline figures, baselines, detail) and the table."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from rich.table import Table

SEED = {"mailboxes": 100, "apscheduler_s": 50 * 60, "celery_5_workers_s": 8 * 60}
"""The seed document's published figures (100 mailboxes; message count not given)."""


def machine() -> dict:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    try:
        dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        dovecot = "?"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "os": platform.platform(),
        "dovecot": dovecot,
        "note": "Dovecot, Redis and mailq share these cores",
    }


def figures(args, results: dict) -> dict:
    """The JSON document: flat headline keys plus the detail of every phase."""
    first, bare, seq, lat = results["first"], results["bare"], results["sequential"], results["latency"]
    return {
        "params": {
            "mailboxes": args.mailboxes,
            "messages": args.messages,
            "workers": args.workers,
            "interval_s": args.interval,
            "idle_sizes": args.idle_sizes,
            "quick": args.quick,
        },
        "machine": machine(),
        "first_ingest_s": first["s"],
        "first_ingest_msgs_per_s": first["msgs_per_s"],
        "first_ingest_cpu_s": first["cpu_s"],
        "idle_cycle_s": {str(n): r["s"] for n, r in results["idle"].items()},
        "idle_cycle_cpu_s": {str(n): r["cpu_s"] for n, r in results["idle"].items()},
        "latency_p50_s": lat["p50_s"],
        "latency_p95_s": lat["p95_s"],
        "baselines": {"bare_imap": bare, "sequential": seq, "seed": SEED},
        "ratios": {
            "mailq_vs_bare_rate": first["msgs_per_s"] / bare["msgs_per_s"],
            "speedup_vs_sequential": seq["s"] / first["s"],
            "seed_celery_vs_apscheduler": SEED["apscheduler_s"] / SEED["celery_5_workers_s"],
        },
        "cli_locked_retries": results.get("cli_locked_retries", 0),
        "detail": {"first_ingest": first, "idle": {str(n): r for n, r in results["idle"].items()}, "latency": lat},
    }


def render(doc: dict) -> Table:
    p, b = doc["params"], doc["baselines"]
    bare, seq, d = b["bare_imap"], b["sequential"], doc["detail"]
    first = d["first_ingest"]
    table = Table(
        title=f"mailq bench: {p['mailboxes']} mailboxes x {p['messages']} messages, {p['workers']} workers "
        f"({doc['machine']['cpus']} x {doc['machine']['cpu_model']}, Dovecot on the same cores)"
    )
    table.add_column("figure")
    table.add_column("mailq", justify="right")
    table.add_column("bare IMAP loop", justify="right")
    table.add_column("sequential poller", justify="right")
    table.add_column("seed (100 mailboxes)", justify="right")
    table.add_row(
        "first ingest, wall",
        f"{first['s']:.2f} s",
        f"{bare['s']:.2f} s",
        f"{seq['s']:.2f} s",
        f"Celery x5: {SEED['celery_5_workers_s']} s\nAPScheduler: {SEED['apscheduler_s']} s",
    )
    table.add_row(
        "first ingest, rate",
        f"{first['msgs_per_s']:.0f} msg/s\n{first['mb_per_s']:.1f} MB/s",
        f"{bare['msgs_per_s']:.0f} msg/s",
        f"{seq['msgs_per_s']:.0f} msg/s",
        "",
    )
    r = doc["ratios"]
    table.add_row(
        "ratio",
        "",
        f"mailq/bare {r['mailq_vs_bare_rate']:.2f}",
        f"speed-up {r['speedup_vs_sequential']:.2f}x",
        f"speed-up {r['seed_celery_vs_apscheduler']:.2f}x",
    )
    failed = first["failed_polls"] + d["latency"]["failed_polls"] + sum(c["failed_polls"] for c in d["idle"].values())
    if failed:
        table.add_row("[red]polls that crashed[/]", f"[red]{failed}[/]", "", "", "(see the failed registry)")
    table.add_row(
        "first ingest, CPU",
        f"{first['cpu_s']:.1f} s mailq\n{first['dovecot_cpu_s']:.1f} s Dovecot",
        f"{bare['cpu_s']:.1f} s",
        f"{seq['cpu_s']:.1f} s",
        "",
    )
    for n, cycle in d["idle"].items():
        lagging = "" if cycle["started_quiet"] else "\n[yellow]farm was not keeping up[/]"
        table.add_row(
            f"idle cycle, {n} mailboxes",
            f"{cycle['s']:.2f} s\n{cycle['cpu_s']:.1f} s CPU mailq, {cycle['dovecot_cpu_s']:.1f} s Dovecot{lagging}",
            "",
            "",
            f"(interval {cycle['interval_s']} s)",
        )
    lat = d["latency"]
    table.add_row(
        "new-mail latency",
        f"p50 {lat['p50_s']:.2f} s\np95 {lat['p95_s']:.2f} s",
        "",
        "",
        f"(interval {lat['interval_s']} s, {lat['samples']} messages)",
    )
    return table


NOTES = """[dim]first ingest: all first polls made due at once in rq-scheduler; wall = due -> last row stored (DB + blobs).
idle cycle: interval 60 s, no new mail, all mailboxes due at once; wall = due -> every mailbox has a finished poll run;
  CPU = user+sys of the scheduler, workers and their work-horses (/proc). Scheduler check interval (1 s) included.
latency: schedules spread over the interval; feeder drops mail at random times; append -> row stored.[/]"""
