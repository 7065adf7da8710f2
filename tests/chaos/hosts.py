"""Simulated hosts for the multi-host scenarios: separate process groups sharing nothing but the network.

Each `Host` has its own working directory and ``MAILQ_VAR_DIR`` (nothing of it
is shared with the other host: the blobs are in S3, the rows in PostgreSQL, the
queues in Redis), its own ``HOSTNAME`` and worker names, and runs one
scheduler and its workers, each in its own session. `kill` SIGKILLs every
process of the host at once — the machine losing power — and keeps them down;
`start` brings the host back (new worker names, as a rebooted machine's
workers would be: the dead ones stay registered in Redis until their TTL).
"""

from __future__ import annotations

import os
import signal

from tests.testbed.procs import Proc, mailq_argv


class Host:
    def __init__(self, farm, name: str, workers: int):
        self.farm = farm
        self.name = name
        self.workers = workers
        self.root = farm.root / "hosts" / name
        self.env = {**farm.env, "MAILQ_VAR_DIR": str(self.root / "var"), "HOSTNAME": name}
        self.generation = 0
        self.processes: list[Proc] = []
        self.pids: set[int] = set()  # every pid this host ever ran: poll runs name their worker by pid

    def __repr__(self) -> str:
        return f"Host({self.name}, {len(self.processes)} processes, generation {self.generation})"

    def start(self) -> None:
        """Boot the host: a scheduler and `workers` workers (named after the host and the boot)."""
        self.generation += 1
        g = self.generation
        (self.root / "var").mkdir(parents=True, exist_ok=True)
        logs = self.root / "logs"
        specs = [(f"{self.name}-scheduler-g{g}", mailq_argv("scheduler"))]
        specs += [
            (f"{self.name}-w{i}-g{g}", [*mailq_argv("worker"), "--name", f"{self.name}-w{i}-g{g}"]) for i in range(1, self.workers + 1)
        ]
        self.processes = []
        for name, argv in specs:
            p = self.farm.supervisor.add(Proc(name, argv, self.env, logs, self.root))
            self.processes.append(p)
            p.start()
        self.note_pids()

    def note_pids(self) -> set[int]:
        """Record the current pids (the supervisor may have restarted a process) and return them all."""
        self.pids |= {p.pid for p in self.processes if p.alive()}
        return self.pids

    def alive(self) -> bool:
        return any(p.alive() for p in self.processes)

    def kill(self) -> int:
        """SIGKILL every process group of the host at the same moment and keep them down; returns how many."""
        self.note_pids()
        victims = []
        for p in self.processes:
            with p.lock:
                p.wanted = False  # the supervisor must not restart them: the machine is gone
                p._expect_exit = True
                if p.alive():
                    p.kills += 1
                    victims.append(p)
        for p in victims:
            try:
                os.killpg(p.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in victims:
            p.popen.wait(10)
        return len(victims)
