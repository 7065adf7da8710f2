"""scripts/bench at CI size: it completes and reports every figure (the numbers themselves are not judged)."""

from __future__ import annotations

import json

from tests.helpers import left_behind, run_script

HEADLINE = ["first_ingest_s", "first_ingest_msgs_per_s", "first_ingest_cpu_s", "latency_p50_s", "latency_p95_s"]


def test_quick_bench_completes_and_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc, scratch = run_script("bench", "--quick", "--json", str(out), scratch_prefix="mqb-", timeout=120, COLUMNS="200")
    doc = json.loads(out.read_text())
    for key in HEADLINE:
        assert isinstance(doc[key], (int, float)) and doc[key] > 0, key
    assert set(doc["idle_cycle_s"]) == {"10", "50"}
    assert all(v > 0 for v in doc["idle_cycle_s"].values())
    assert all(v >= 0 for v in doc["idle_cycle_cpu_s"].values())
    bare, seq = doc["baselines"]["bare_imap"], doc["baselines"]["sequential"]
    assert bare["messages"] == seq["messages"] == 50
    assert bare["msgs_per_s"] > 0 and seq["msgs_per_s"] > 0
    seed = doc["baselines"]["seed"]
    assert f"Celery x5: {seed['celery_5_workers_s']} s" in proc.stdout, "the table shows the seed figures the JSON reports"
    assert doc["ratios"]["seed_celery_vs_apscheduler"] == seed["apscheduler_s"] / seed["celery_5_workers_s"]
    assert doc["ratios"]["mailq_vs_bare_rate"] > 0 and doc["ratios"]["speedup_vs_sequential"] > 0
    assert "first ingest" in proc.stdout
    left = left_behind(scratch)
    assert left == [], "the bench left files behind"
