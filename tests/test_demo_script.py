"""scripts/demo without apt-get or pip: the system tools and the test's virtualenv are already there.

The demo is pointed at the test's interpreter (MAILQ_DEMO_VENV), a temporary
state directory (MAILQ_DEMO_DIR) and the suite's private Redis.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from .helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "scripts" / "demo"


def _env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILQ_")}
    env.update(MAILQ_DEMO_DIR=str(tmp_path / "demo"), MAILQ_DEMO_VENV=sys.prefix, MAILQ_REDIS_URL=redis_url)
    return env


def _demo(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEMO), *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _messages(tmp_path: Path) -> int:
    db = tmp_path / "demo" / "mailq.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM message").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _delivered(tmp_path: Path) -> int:
    """Messages in the demo mailboxes' maildirs (the 6 injected ones plus what the feeder added)."""
    mail = tmp_path / "demo" / "testbed" / "mail"
    return sum(1 for sub in ("new", "cur") for d in mail.glob(f"*/{sub}") for _ in d.iterdir())


def _testbed_running(env: dict[str, str], tmp_path: Path) -> bool:
    status = subprocess.run(
        [str(REPO / "scripts" / "testbed"), "status", "--root", str(tmp_path / "demo" / "testbed")],
        env=dict(env, PYTHON=sys.executable),
        capture_output=True,
        text=True,
    )
    return status.returncode == 0


def test_demo_setup_gives_importable_mailboxes_that_poll_inline(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    try:
        setup = _demo(["--setup-only", "--mailboxes", "3", "--messages", "2"], env)
        assert setup.returncode == 0, setup.stderr + setup.stdout
        again = _demo(["--setup-only", "--mailboxes", "3", "--messages", "2"], env)  # re-running is safe
        assert again.returncode == 0, again.stderr + again.stdout
        assert "imported 0 new" in again.stdout
        poll = subprocess.run(
            ["bash", "-c", f"source {tmp_path}/demo.env && mailq poll --all --inline --json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert poll.returncode == 0, poll.stderr
        assert _messages(tmp_path) == 6
    finally:
        stop = _demo(["stop"], env)
    assert stop.returncode == 0
    assert not _testbed_running(env, tmp_path)


def test_demo_runs_the_farm_and_ctrl_c_stops_everything(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    proc = subprocess.Popen(
        [str(DEMO), "--mailboxes", "3", "--messages", "2", "--workers", "1", "--rate", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _messages(tmp_path) >= 6 or proc.poll() is not None, timeout=90, what="the demo to ingest")
        assert proc.poll() is None, proc.stdout.read()
        wait_for(lambda: _delivered(tmp_path) > 6, timeout=30, what="the feeder to deliver new mail")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C does to the terminal's foreground group
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _demo(["stop"], env)
    assert "mailq console" in out
    assert "new mail for user000" in out  # the feeder ran
    assert not _testbed_running(env, tmp_path)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left running: {leftovers}"
