"""The scenarios: one kind of fault each (or a seeded mix), run on a fresh private farm.

Each scenario function gets a `Run` (farm, feeder, watcher, rng, sizes) while
mail is arriving, injects its fault, and returns the recovery times it
measured: from the fault ending to every message delivered so far being in
the database. The runner then stops the feed, drains and verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mailq import db
from tests.chaos import faults
from tests.chaos.feed import percentile
from tests.chaos.host_loss import host_loss
from tests.chaos.run import Run, Size, Stuck, wait_alive

__all__ = ["SCENARIOS"]

# -- scenarios --------------------------------------------------------------


def worker_kill(run: Run) -> list[float]:
    """SIGKILL random workers at random moments (busy ones preferred), restarted by the supervisor."""
    workers, end = run.farm.workers, time.monotonic()
    group_kills = 0
    for _ in range(run.size.trials):
        run.pause(0.3, 2.5)
        wait_alive(workers)
        busy = [w for w in workers if w.busy()]
        victim = run.rng.choice(busy if busy and run.rng.random() < 0.7 else workers)
        group = run.rng.random() < 0.8  # else the main process only: its work-horse finishes as an orphan
        group_kills += group
        down = run.rng.uniform(0.0, 1.0)
        victim.kill(hold=down, group=group)
        end = time.monotonic() + down
    run.notes["group_kills"] = group_kills
    wait_alive(workers)
    return [run.recover(end)]


def scheduler_kill(run: Run) -> list[float]:
    """SIGKILL the scheduler, keep it down 1-4 s, let the supervisor restart it; repeat."""
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 3.0)
        down = run.rng.uniform(1.0, 4.0)
        run.farm.schedulers[0].kill(hold=down)
        end = time.monotonic() + down
        wait_alive(run.farm.schedulers)
        out.append(run.recover(end))
    return out


def two_schedulers(run: Run) -> list[float]:
    """Two schedulers at once (started by the runner); watch for pile-up, then SIGKILL one of them."""
    peak = 0
    for _ in range(max(1, int(run.size.fault_s * 2))):
        peak = max(peak, sum(faults.queue_lengths(run.farm).values()))
        faults.hold(0.5)
    run.notes["peak_queued"] = peak
    run.notes["mailboxes"] = run.size.mailboxes
    out = []
    for _ in range(run.size.trials):
        victim = run.rng.choice(run.farm.schedulers)
        victim.kill(hold=2.0)
        end = time.monotonic() + 2.0
        out.append(run.recover(end))
        wait_alive(run.farm.schedulers)
    return out


def idler_kill(run: Run) -> list[float]:
    """SIGKILL one of two idlers (restarted after 1 s): its mailboxes move to the other, and polling covers the gap."""
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 3.0)
        run.rng.choice(run.farm.idlers).kill(hold=1.0)
        end = time.monotonic() + 1.0
        wait_alive(run.farm.idlers)
        out.append(run.recover(end))
    return out


def redis_flush(run: Run) -> list[float]:
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 3.0)
        faults.redis_flush(run.farm)
        out.append(run.recover(time.monotonic()))
    return out


def redis_restart(run: Run) -> list[float]:
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 3.0)
        faults.redis_down(run.farm, run.size.fault_s)
        out.append(run.recover(time.monotonic()))
    return out


def dovecot_down(run: Run) -> list[float]:
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 2.0)
        faults.dovecot_down(run.farm, run.size.fault_s)
        out.append(run.recover(time.monotonic()))
    return out


def uidvalidity(run: Run) -> list[float]:
    """New UIDVALIDITY for `trials` mailboxes: half keep their UIDs, half are renumbered from 1."""
    users = run.rng.sample(list(run.farm.passwords), min(run.size.trials, len(run.farm.passwords)))
    renumbered = 0
    for i, user in enumerate(users):
        renumber = i % 2 == 1
        renumbered += renumber
        faults.change_uidvalidity(run.farm, user, renumber)
        run.pause(0.1, 0.8)
    run.notes["renumbered"] = renumbered
    return [run.recover(time.monotonic())]


def db_unavailable(run: Run) -> list[float]:
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 2.0)
        faults.database_unavailable(run.farm, run.size.fault_s)
        out.append(run.recover(time.monotonic()))
    run.notes["fault_s"] = run.size.fault_s
    return out


def password_change(run: Run) -> list[float]:
    """One mailbox's password changes on the server: it must park in auth_error after ONE failed login."""
    from mailq.models import Mailbox

    victim = run.rng.choice(list(run.farm.passwords))
    run.feeder.active.remove(victim)  # its mail so far must be stored first; nothing new can be fetched after
    run.recover(time.monotonic())
    before = faults.failed_logins(run.farm, victim)
    faults.change_password(run.farm, victim)
    changed = time.monotonic()
    mailbox_id = run.farm.mailbox_ids[victim]

    def state() -> str | None:
        try:
            return Mailbox.get_by_id(mailbox_id).state
        except Exception:
            return None
        finally:
            db.close()

    deadline = changed + 60
    while state() != "auth_error" and time.monotonic() < deadline:
        faults.hold(0.2)
    detected = time.monotonic() - changed
    # Then several more intervals in which no further login may happen (waiting for a non-event, bounded).
    faults.hold(3 * run.size.interval + 2)
    final = state()
    attempts = faults.failed_logins(run.farm, victim) - before
    run.notes.update(victim_state=final, failed_logins=attempts, detect_s=round(detected, 2))
    if final != "auth_error" or attempts != 1:
        run.notes["problem"] = f"expected auth_error after exactly 1 failed login, got {final} after {attempts}"
    return []


def flood(run: Run) -> list[float]:
    """`flood` messages land at once in one extra mailbox; the others' latency before vs during."""
    flood_user = run.farm.add_mailboxes(1, prefix="flood")[0]
    others = list(run.feeder.active)
    before_start = time.monotonic()
    faults.hold(max(5.0, run.size.fault_s))
    run.recover(time.monotonic())
    before = [d for d in run.feeder.deliveries if d.user in others and d.at >= before_start]
    t0 = time.monotonic()
    batch = run.feeder.deliver(flood_user, run.size.flood)
    seen = run.watcher.wait_for(batch, timeout=max(120.0, run.size.flood / 20))
    if seen is None:
        raise Stuck(f"the flood of {run.size.flood} was not stored in time")
    during = [d for d in run.feeder.deliveries if d.user in others and t0 <= d.at <= seen]
    p_before = percentile(run.watcher.latencies(before), 95)
    p_during = percentile(run.watcher.latencies(during), 95)
    run.notes.update(
        flood=run.size.flood,
        flood_drain_s=round(seen - t0, 2),
        flood_rate=round(run.size.flood / max(seen - t0, 1e-6), 1),
        p95_before_s=p_before and round(p_before, 2),
        p95_during_s=p_during and round(p_during, 2),
        others=len(others),
    )
    return [seen - t0]


MIX_FAULTS = [
    "worker-kill",
    "scheduler-kill",
    "idler-kill",
    "redis-flush",
    "redis-restart",
    "dovecot-down",
    "uidvalidity",
    "db-unavailable",
]


def mix(run: Run) -> list[float]:
    """A seeded random sequence of single faults, each followed by its recovery."""
    out, done = [], []
    short = max(2.0, run.size.fault_s / 2)
    for _ in range(run.size.trials):
        kind = run.rng.choice(MIX_FAULTS)
        done.append(kind)
        run.pause(0.5, 2.0)
        run.log(f"  mix: {kind}")
        if kind == "worker-kill":
            run.rng.choice(run.farm.workers).kill(hold=0.5)
            end = time.monotonic() + 0.5
            wait_alive(run.farm.workers)
        elif kind == "scheduler-kill":
            run.farm.schedulers[0].kill(hold=2.0)
            end = time.monotonic() + 2.0
            wait_alive(run.farm.schedulers)
        elif kind == "idler-kill":
            run.farm.idlers[0].kill(hold=1.0)
            end = time.monotonic() + 1.0
            wait_alive(run.farm.idlers)
        elif kind == "redis-flush":
            faults.redis_flush(run.farm)
            end = time.monotonic()
        elif kind == "redis-restart":
            faults.redis_down(run.farm, short)
            end = time.monotonic()
        elif kind == "dovecot-down":
            faults.dovecot_down(run.farm, short)
            end = time.monotonic()
        elif kind == "uidvalidity":
            faults.change_uidvalidity(run.farm, run.rng.choice(list(run.farm.passwords)), run.rng.random() < 0.5)
            end = time.monotonic()
        else:
            faults.database_unavailable(run.farm, short)
            end = time.monotonic()
        out.append(run.recover(end))
    run.notes["faults"] = done
    return out


@dataclass
class Scenario:
    name: str
    func: Callable[[Run], list[float]]
    full: Size
    quick: Size
    schedulers: int = 1
    doc: str = ""
    hosts: int = 0  # >0: that many simulated hosts (tests/chaos/hosts.py) instead of one farm
    storage: str = "file"  # or "s3": the farm's private S3 server
    db: str | None = None  # a database the scenario needs whatever --db says
    idlers: int = 0  # `mailq idler` processes (push) beside the workers


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "worker-kill",
            worker_kill,
            Size(mailboxes=20, rate=20, trials=20, workers=4),
            Size(mailboxes=8, rate=12, trials=6),
            doc="SIGKILL random workers at random moments, restarted",
        ),
        Scenario(
            "scheduler-kill",
            scheduler_kill,
            Size(mailboxes=20, rate=20, trials=5),
            Size(mailboxes=8, rate=12, trials=2),
            doc="SIGKILL the scheduler, restart after 1-4 s",
        ),
        Scenario(
            "two-schedulers",
            two_schedulers,
            Size(mailboxes=20, rate=20, trials=3, fault_s=20),
            Size(mailboxes=8, rate=12, trials=1, fault_s=5),
            schedulers=2,
            doc="two schedulers at once, then SIGKILL one",
        ),
        Scenario(
            "idler-kill",
            idler_kill,
            Size(mailboxes=20, rate=20, trials=5),
            Size(mailboxes=8, rate=12, trials=2),
            doc="SIGKILL one of two idlers (push), restart after 1 s",
            idlers=2,
        ),
        Scenario(
            "redis-flush",
            redis_flush,
            Size(mailboxes=20, rate=20, trials=5),
            Size(mailboxes=8, rate=12, trials=2),
            doc="FLUSHDB on the farm's Redis",
        ),
        Scenario(
            "redis-restart",
            redis_restart,
            Size(mailboxes=20, rate=20, trials=3, fault_s=10),
            Size(mailboxes=8, rate=12, trials=1, fault_s=3),
            doc="redis-server stopped, then started empty",
        ),
        Scenario(
            "dovecot-down",
            dovecot_down,
            Size(mailboxes=20, rate=20, trials=2, fault_s=30),
            Size(mailboxes=8, rate=12, trials=1, fault_s=5),
            doc="the IMAP server stopped for a while",
        ),
        Scenario(
            "uidvalidity",
            uidvalidity,
            Size(mailboxes=20, rate=20, trials=8),
            Size(mailboxes=8, rate=12, trials=4),
            doc="new UIDVALIDITY (UIDs kept / renumbered) mid-run",
        ),
        Scenario(
            "db-unavailable",
            db_unavailable,
            Size(mailboxes=20, rate=20, trials=2, fault_s=45),
            Size(mailboxes=8, rate=12, trials=1, fault_s=8),
            doc="SQLite write lock held / PostgreSQL refusing connections",
        ),
        Scenario(
            "password-change",
            password_change,
            Size(mailboxes=20, rate=20),
            Size(mailboxes=6, rate=10),
            doc="a password changed on the server mid-run",
        ),
        Scenario(
            "flood",
            flood,
            Size(mailboxes=99, rate=20, flood=10_000, workers=4, interval=5, fault_s=20),
            Size(mailboxes=19, rate=10, flood=2_000, workers=3, interval=3, fault_s=6),
            doc="10,000 new messages in one mailbox while 99 others keep their latency",
        ),
        Scenario(
            "host-loss",
            host_loss,
            Size(mailboxes=200, rate=40, trials=2, workers=3, interval=10, fault_s=10),
            Size(mailboxes=200, rate=20, trials=1, workers=2, interval=10, fault_s=5),
            hosts=2,
            storage="s3",
            db="postgresql",
            doc="two hosts on PostgreSQL + S3, no shared disk; SIGKILL all of one host, then it returns",
        ),
        Scenario(
            "mix",
            mix,
            Size(mailboxes=20, rate=20, trials=10, fault_s=8),
            Size(mailboxes=8, rate=12, trials=4, fault_s=4),
            doc="a seeded random mix of the faults above",
            idlers=1,
        ),
    ]
}
