"""Small test utilities shared by every test module."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tests.testbed import waiting

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition", interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``what`` after ``timeout`` seconds."""
    return waiting.wait_for(predicate, timeout, what, interval, error=AssertionError)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


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
