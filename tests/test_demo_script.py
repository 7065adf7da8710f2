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
    mail = tmp_path / "demo-testbed" / "mail"
    return sum(1 for sub in ("new", "cur") for d in mail.glob(f"*/{sub}") for _ in d.iterdir())


def _testbed_running(env: dict[str, str], tmp_path: Path) -> bool:
    status = subprocess.run(
        [str(REPO / "scripts" / "testbed"), "status", "--root", str(tmp_path / "demo-testbed")],
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


def _demo_processes(tmp_path: Path) -> list[str]:
    """Every live process the demo started: its state directory is in the command line or the environment."""
    mark = str(tmp_path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue  # a zombie waiting for its parent's wait(): it runs no more
            if mark in (proc / "cmdline").read_bytes() or mark in (proc / "environ").read_bytes():
                found.append(proc.name + ": " + (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError):
            continue
    return found


def _start_demo(tmp_path: Path, env: dict[str, str], pipe_to_tee: bool = False) -> subprocess.Popen:
    """The demo in a session of its own, as in a terminal; with ``pipe_to_tee``: ``scripts/demo 2>&1 | tee LOG``."""
    args = f"{DEMO} --mailboxes 3 --messages 2 --workers 2 --rate 2"
    log = tmp_path / "demo.log"
    command = ["bash", "-c", f"{args} 2>&1 | tee {log}"] if pipe_to_tee else ["bash", "-c", f"exec {args} >{log} 2>&1"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True, stdin=subprocess.DEVNULL
    )


def _farm_running(tmp_path: Path, proc: subprocess.Popen) -> None:
    wait_for(lambda: _messages(tmp_path) >= 6 or proc.poll() is not None, timeout=90, what="the demo to ingest")
    assert proc.poll() is None, (tmp_path / "demo.log").read_text()
    wait_for(lambda: _delivered(tmp_path) > 6, timeout=30, what="the feeder to deliver new mail")
    wait_for(lambda: len(_demo_processes(tmp_path)) >= 5, timeout=10, what="the farm's processes")


def _all_stopped(tmp_path: Path, env: dict[str, str], within: float) -> None:
    wait_for(lambda: not _demo_processes(tmp_path), timeout=within, what="every demo process to stop", interval=0.2)
    assert not _testbed_running(env, tmp_path)


def _cleanup(proc: subprocess.Popen, env: dict[str, str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _demo(["stop"], env)


def test_demo_piped_to_tee_stops_everything_on_ctrl_c(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    proc = _start_demo(tmp_path, env, pipe_to_tee=True)
    try:
        _farm_running(tmp_path, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C does: the whole foreground group, tee included
        _all_stopped(tmp_path, env, within=15)
        proc.wait(timeout=10)
    finally:
        _cleanup(proc, env)
    log = (tmp_path / "demo.log").read_text()
    assert "mailq console" in log
    assert "new mail for user000" in log  # the feeder ran


def test_demo_stops_everything_when_the_terminal_hangs_up(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    proc = _start_demo(tmp_path, env)
    try:
        _farm_running(tmp_path, proc)
        os.killpg(proc.pid, signal.SIGHUP)  # the terminal closed
        _all_stopped(tmp_path, env, within=15)
    finally:
        _cleanup(proc, env)


def test_demo_stop_ends_a_farm_whose_script_and_supervisor_were_killed(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    proc = _start_demo(tmp_path, env)
    try:
        _farm_running(tmp_path, proc)
        pgid = int((tmp_path / "demo" / "farm.pid").read_text())
        os.kill(proc.pid, signal.SIGKILL)  # the script dies without cleaning up ...
        os.kill(pgid, signal.SIGKILL)  # ... and so does the supervisor: the workers and scheduler are orphans
        proc.wait()
        assert _demo_processes(tmp_path), "nothing was left running: the test proves nothing"
        stop = _demo(["stop"], env)
        assert stop.returncode == 0, stop.stderr
        _all_stopped(tmp_path, env, within=5)
        assert "farm stopped" in stop.stdout
    finally:
        _cleanup(proc, env)


def test_rq_info_sees_the_demo_farm_with_only_demo_env(tmp_path, redis_url):
    env = _env(tmp_path, redis_url)
    setup = _demo(["--setup-only", "--mailboxes", "1", "--messages", "0"], env)
    try:
        assert setup.returncode == 0, setup.stderr + setup.stdout
        clean = {k: v for k, v in env.items() if not k.startswith(("MAILQ_", "RQ_"))}
        info = subprocess.run(
            ["bash", "-c", f"source {tmp_path}/demo.env && mailq poll --all >/dev/null && rq info"],
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        _demo(["stop"], env)
    assert info.returncode == 0, info.stderr
    assert "email " in info.stdout and "1 jobs total" in info.stdout, info.stdout  # the demo's queue, not db 0's
