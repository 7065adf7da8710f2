"""The demo's process supervisor: runs a Procfile's processes and always stops them all.

Used instead of honcho by ``scripts/demo``, because honcho stopped nothing when
its output pipe died (``scripts/demo | tee log``, then Ctrl+C kills ``tee``).
Here output goes through this process, and a broken output only silences it.
Every child runs in this process's own process group, whose id is written to
``--pid-file`` so ``scripts/demo stop`` can end them even when this supervisor
was killed. SIGINT, SIGTERM, SIGHUP, or the death of the parent (the demo
script) stop the farm: SIGTERM to each process (RQ's warm shutdown), SIGKILL
after ``--grace`` seconds.

    python -m tests.testbed.farm -f Procfile -c worker=5 --pid-file var/demo/farm.pid
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

COLOURS = ["36", "33", "32", "35", "34", "31"]


def read_procfile(path: Path) -> list[tuple[str, str]]:
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            entries.append((name.strip(), command.strip()))
    return entries


class Output:
    """Prefixed lines on stdout; after the first write error (a dead pipe, a closed terminal) it drops them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.broken = False

    def line(self, name: str, colour: str, text: str) -> None:
        if self.broken:
            return
        with self.lock:
            try:
                sys.stdout.write(f"\033[{colour}m{time.strftime('%H:%M:%S')} {name:<10} |\033[0m {text}\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                self.broken = True


def _pump(proc: subprocess.Popen, name: str, colour: str, out: Output) -> None:
    for raw in iter(proc.stdout.readline, b""):
        out.line(name, colour, raw.decode("utf-8", "replace").rstrip("\n"))


class Farm:
    def __init__(self, entries: list[tuple[str, str]], counts: dict[str, int], cwd: str, grace: float):
        self.entries, self.counts, self.cwd, self.grace = entries, counts, cwd, grace
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.out = Output()
        self.stop_reason: str | None = None

    def start(self) -> None:
        for i, (name, command) in enumerate(self.entries):
            for n in range(1, self.counts.get(name, 1) + 1):
                label = f"{name}.{n}"
                proc = subprocess.Popen(
                    shlex.split(command),
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                )
                self.procs.append((label, proc))
                colour = COLOURS[i % len(COLOURS)]
                threading.Thread(target=_pump, args=(proc, label, colour, self.out), daemon=True).start()
                self.out.line("system", "0", f"{label} started (pid {proc.pid})")

    def request_stop(self, signum, _frame=None) -> None:
        self.stop_reason = self.stop_reason or signal.Signals(signum).name

    def run(self, parent: int) -> int:
        code = 0
        while self.stop_reason is None:
            if parent > 1 and os.getppid() != parent:
                self.stop_reason = "the demo script is gone"
                break
            exited = [(label, p) for label, p in self.procs if p.poll() is not None]
            if exited:
                label, proc = exited[0]
                self.stop_reason = f"{label} exited with code {proc.returncode}"
                code = 1
                break
            time.sleep(0.2)
        self.stop()
        return code

    def stop(self) -> None:
        self.out.line("system", "0", f"stopping the farm ({self.stop_reason})")
        for _label, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(p.poll() is None for _l, p in self.procs):
            time.sleep(0.1)
        for label, proc in self.procs:
            if proc.poll() is None:
                self.out.line("system", "0", f"{label} did not stop in {self.grace:.0f}s: killed")
                proc.kill()
            proc.wait()
        self.out.line("system", "0", "all processes stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm", description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--procfile", required=True, type=Path)
    parser.add_argument("-c", "--concurrency", action="append", default=[], metavar="NAME=N")
    parser.add_argument("-d", "--directory", default=".")
    parser.add_argument("--pid-file", type=Path, help="write this process group's id here (removed on exit)")
    parser.add_argument("--grace", type=float, default=8.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args(argv)
    counts = {k: int(v) for k, v in (c.split("=", 1) for c in args.concurrency)}

    parent = os.getppid()
    os.setpgid(0, 0)  # our own group: the terminal's signals reach the demo script, which stops us
    farm = Farm(read_procfile(args.procfile), counts, args.directory, args.grace)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, farm.request_stop)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpgid(0)}\n")
    try:
        farm.start()
        return farm.run(parent)
    finally:
        if farm.stop_reason is None:  # an error while starting: leave nothing behind
            farm.stop_reason = "start failed"
            farm.stop()
        if args.pid_file:
            args.pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
