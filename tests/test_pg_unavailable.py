"""Without PostgreSQL, its tests skip on a developer's machine and fail in CI (CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_PG_TEST = "tests/test_states.py::test_the_enabled_rule_agrees_in_python_and_sql[postgresql]"


def _run(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MAILQ_TEST_PG"] = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_PG_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_locally_the_postgresql_tests_skip_and_say_why():
    proc = _run(ci=None)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout and "PostgreSQL unreachable" in proc.stdout


def test_in_ci_they_fail():
    proc = _run(ci="true")
    assert proc.returncode != 0
    assert "CI is set: PostgreSQL tests must run" in proc.stdout
