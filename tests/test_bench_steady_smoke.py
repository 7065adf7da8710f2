"""scripts/bench_steady.py at CI size (~20 s): it completes and reports every figure (their values are not judged)."""

from __future__ import annotations

import json

from tests.helpers import left_behind, run_script

NUMBERS = ["polls_per_min", "demand_polls_per_min", "gap_p50_s", "gap_p95_s", "gap_max_s", "window_s"]
PER_POLL = ["mailq", "scheduler", "workers", "redis", "dovecot"]
SHARES = ["mailq", "redis", "dovecot", "whole_machine_busy"]


def test_steady_smoke_completes_and_reports_every_figure(tmp_path):
    out = tmp_path / "steady.json"
    proc, scratch = run_script("bench_steady.py", "--smoke", "--json", str(out), scratch_prefix="mqs-", timeout=180)
    doc = json.loads(out.read_text())
    steady, bare = doc["steady"], doc["bare"]
    for key in NUMBERS:
        assert isinstance(steady[key], (int, float)) and steady[key] > 0, key
    assert steady["polls"] > 0 and steady["gaps"] > 0 and steady["mailboxes_polled"] > 0
    for key in PER_POLL:
        assert isinstance(steady["cpu_ms_per_poll"][key], (int, float)) and steady["cpu_ms_per_poll"][key] >= 0, key
    assert steady["cpu_ms_per_poll"]["mailq"] > 0
    for key in SHARES:
        assert 0 <= steady["machine_share"][key] <= 1, key
    assert steady["failed_jobs"] == 0 and steady["not_ok_polls"] == 0  # idle polls on a healthy bed all succeed
    assert bare["polls"] == doc["params"]["mailboxes"] and bare["client_cpu_ms_per_poll"] > 0
    assert bare["dovecot_cpu_ms_per_poll"] >= 0 and doc["ratios"]["mailq_vs_bare_client_cpu"] > 0
    assert "CPU per poll" in proc.stdout and "bare idle poll" in proc.stdout
    left = left_behind(scratch)
    assert left == [], "the bench left files behind"
