"""scripts/bench_s3.py at a tiny size: both stores ingest every message (the timings are not judged)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_s3_bench_ingests_everything_into_both_stores():
    scratch = Path(tempfile.mkdtemp(prefix="mqs3-"))  # short: Dovecot's unix sockets live under it (108-byte limit)
    env = dict(os.environ, TMPDIR=str(scratch), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_s3.py"), "--mailboxes", "3", "--messages", "4", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    rows = dict(re.findall(r"│\s+(local|s3) │\s+(\d+) │", proc.stdout))
    assert rows == {"local": "12", "s3": "12"}, proc.stdout
    assert not any(scratch.iterdir())  # cleaned up
