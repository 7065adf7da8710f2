"""scripts/bench_s3.py at a tiny size: both stores ingest every message (the timings are not judged)."""

from __future__ import annotations

import re

from tests.helpers import run_script


def test_s3_bench_ingests_everything_into_both_stores():
    proc, scratch = run_script(
        "bench_s3.py", "--mailboxes", "3", "--messages", "4", "--workers", "1", scratch_prefix="mqs3-", timeout=120, COLUMNS="200"
    )
    rows = dict(re.findall(r"│\s+(local|s3) │\s+(\d+) │", proc.stdout))
    assert rows == {"local": "12", "s3": "12"}, proc.stdout
    assert not any(scratch.iterdir())  # cleaned up
