"""Small test utilities shared by every test module."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.testbed import waiting

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition", interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``what`` after ``timeout`` seconds."""
    return waiting.wait_for(predicate, timeout, what, interval, error=AssertionError)


def serve(server: T) -> Iterator[T]:
    """The body of a fixture that owns a private server: started, yielded, stopped at teardown."""
    server.start()
    yield server
    server.stop()


class UserPool:
    """IMAP users ``PREFIX0000``... (password ``pw-NAME``) made before a server starts, which is free;
    once they are used up, each new one is added to the running server (it needs ~1 s to see it)."""

    def __init__(self, prefix: str, size: int):
        self.prefix = prefix
        self.names = [f"{prefix}{i:04d}" for i in range(size)]
        self._next = itertools.count()

    def passwords(self) -> dict[str, str]:
        return {name: f"pw-{name}" for name in self.names}

    def take(self, server) -> tuple[str, str]:
        """A user nobody has had yet: (username, password)."""
        index = next(self._next)
        if index < len(self.names):
            name = self.names[index]
        else:
            name = f"{self.prefix}{os.getpid()}x{index}"
            server.add_user(name, f"pw-{name}")
        return name, f"pw-{name}"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def mailbox_add_args(name: str, port: int, username: str, *extra: str) -> list[str]:
    """``mailq mailbox add`` for a plain-IMAP mailbox on 127.0.0.1:``port``, its password read from stdin."""
    server = ["--host", "127.0.0.1", "--port", str(port), "--security", "plain"]
    return ["mailbox", "add", name, *server, "--username", username, "--password-stdin", *extra]


def run_cli(args: list[str], capsys, stdin: str | None = None) -> CliResult:
    """Run ``mailq`` in-process with the installed settings (fast; use ``run_cli_process`` for env tests)."""
    from mailq.cli import main

    capsys.readouterr()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        try:
            code = main(args)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = old_stdin
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run_cli_process(args: list[str], env: dict[str, str], stdin: str | None = None, cwd=None, timeout: float = 60) -> CliResult:
    """Run ``mailq`` as a real process with exactly ``env`` on top of a minimal environment."""
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        "TZ": "UTC",
    }
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "mailq", *args], input=stdin, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_script(script: str, *args: str, scratch_prefix: str, timeout: float, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run ``scripts/SCRIPT ARGS`` to completion with its temporary files in a fresh scratch directory
    (short: Dovecot's unix sockets live under it, 108-byte limit); fails the test if it fails.

    Returns the process and the scratch directory, for the test to check what was left behind.
    """
    scratch = Path(tempfile.mkdtemp(prefix=scratch_prefix))
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, TMPDIR=str(scratch), **env),
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return proc, scratch


def left_behind(scratch: Path) -> list[Path]:
    """What a script left in its scratch directory; the directory is removed when it left nothing."""
    left = list(scratch.iterdir())
    scratch.rmdir() if not left else None
    return left
