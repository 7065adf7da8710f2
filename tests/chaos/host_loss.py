"""The host-loss scenario: two simulated hosts (tests/chaos/hosts.py), one SIGKILLed whole mid-ingest.

Poll runs name their worker by pid, so which host polled what is read from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailq import db
from mailq.models import PollRun, utcnow
from tests.chaos import faults
from tests.chaos.run import Run, Stuck


def _polls_by_host(hosts, since) -> dict[str, tuple[int, dict[int, object]]]:
    """host name -> (polls started since `since`, {mailbox id: its first poll's start}), from the poll runs' worker pids."""
    owner = {pid: h.name for h in hosts for pid in h.note_pids()}
    counts: dict[str, int] = {h.name: 0 for h in hosts}
    first: dict[str, dict[int, object]] = {h.name: {} for h in hosts}
    try:
        query = PollRun.select(PollRun.mailbox, PollRun.worker, PollRun.started_at).where(PollRun.started_at >= since)
        for mailbox_id, worker, started in query.order_by(PollRun.started_at).tuples():
            pid = (worker or "").rsplit(":", 1)[-1]
            name = owner.get(int(pid)) if pid.isdigit() else None
            if name:
                counts[name] += 1
                first[name].setdefault(mailbox_id, started)
    finally:
        db.close()
    return {name: (counts[name], first[name]) for name in counts}


def _wait_polls(hosts, since, done: Callable[[dict], bool], timeout: float) -> tuple[float | None, dict]:
    """Seconds until `done(polls_by_host)` holds (None if it never did within `timeout`), and the last counts."""
    start, deadline = time.monotonic(), time.monotonic() + timeout
    while True:
        polls = _polls_by_host(hosts, since)
        if done(polls):
            return time.monotonic() - start, polls
        if time.monotonic() > deadline:
            return None, polls
        faults.hold(0.5)


def _wait_in_flight(host, timeout: float) -> int:
    """Wait (bounded) until `host` has polls running; returns how many (0 if none came)."""
    deadline = time.monotonic() + timeout
    while True:
        host.note_pids()
        pids = {p.pid for p in host.processes if p.alive()}  # not a previous boot's (its rows may still say running)
        try:
            workers = [w for (w,) in PollRun.select(PollRun.worker).where(PollRun.outcome == "running").tuples()]
        finally:
            db.close()
        count = sum(1 for w in workers if (w or "").rsplit(":", 1)[-1].isdigit() and int(w.rsplit(":", 1)[-1]) in pids)
        if count or time.monotonic() > deadline:
            return count
        faults.hold(0.05)


def host_loss(run: Run) -> list[float]:
    """Two hosts (no shared file system: PostgreSQL, Redis, S3); SIGKILL every process of one mid-ingest.

    The survivor must carry every mailbox alone, nothing lost or doubled; then the
    dead host boots again and the two share the polls once more.
    """
    hosts, total = run.farm.hosts, run.size.mailboxes
    out = []
    for _ in range(run.size.trials):
        victim = run.rng.choice(hosts)
        survivor = next(h for h in hosts if h is not victim)
        since = utcnow()
        took, polls = _wait_polls(hosts, since, lambda p: all(n >= 5 for n, _ in p.values()), 60)
        if took is None:
            raise Stuck(f"both hosts should be polling before the fault: { ({k: n for k, (n, _) in polls.items()}) }")
        run.pause(0.5, 2.0)
        in_flight = _wait_in_flight(victim, timeout=15)  # mid-ingest: kill while the host is polling
        killed_wall, killed = utcnow(), time.monotonic()
        processes = victim.kill()
        run.log(f"  host-loss: {victim.name} killed ({processes} processes, {in_flight} polls in flight)")
        out.append(run.recover(killed))
        took, polls = _wait_polls(hosts, killed_wall, lambda p, s=survivor.name: len(p[s][1]) >= total, 120)
        if took is None:
            raise Stuck(f"{survivor.name} polled only {len(polls[survivor.name][1])} of {total} mailboxes after the loss")
        alone_s = (max(polls[survivor.name][1].values()) - killed_wall).total_seconds()  # every mailbox polled by then
        faults.hold(run.size.fault_s)  # the survivor alone, mail still arriving
        victim.start()
        back = utcnow()
        run.log(f"  host-loss: {victim.name} back")
        share_s, polls = _wait_polls(
            hosts, back, lambda p, v=victim.name: p[v][0] >= 20 and p[v][0] >= 0.3 * sum(n for n, _ in p.values()), 90
        )
        if share_s is None:
            raise Stuck(f"{victim.name} did not take its share again after returning: { ({k: n for k, (n, _) in polls.items()}) }")
        run.recover(time.monotonic())
        run.notes.setdefault("trials_detail", []).append(
            {
                "victim": victim.name,
                "processes_killed": processes,
                "polls_in_flight": in_flight,
                "survivor_polled_all_s": round(alone_s, 1),  # since the kill
                "share_back_s": round(share_s, 1),
                "polls_after_return": {k: n for k, (n, _) in polls.items()},
            }
        )
    run.notes.update(hosts=len(hosts), workers_per_host=run.size.workers, mailboxes=total)
    return out
