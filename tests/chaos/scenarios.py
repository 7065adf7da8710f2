"""The scenarios: one kind of fault each (or a seeded mix), run on a fresh private farm.

Each scenario function gets a `Run` (farm, feeder, watcher, rng, sizes) while
mail is arriving, injects its fault, and returns the recovery times it
measured: from the fault ending to every message delivered so far being in
the database. The runner then stops the feed, drains and verifies.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailq import db
from tests.chaos import faults
from tests.chaos.farm import Farm
from tests.chaos.feed import Feeder, Watcher, percentile
from tests.chaos.verify import verify_farm

DRAIN_TIMEOUT = 180.0
"""Seconds the farm gets to store everything after the feed stops."""


@dataclass
class Size:
    mailboxes: int = 10
    rate: float = 10.0  # messages per second, over all mailboxes
    trials: int = 1
    fault_s: float = 5.0  # how long a server stays down / a lock is held
    workers: int = 3
    interval: int = 2
    flood: int = 0


@dataclass
class Result:
    scenario: str
    trials: int
    messages: int
    lost: int
    duplicated: int
    recovery_s: float | None
    ok: bool = True
    notes: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "scenario": self.scenario,
            "trials": self.trials,
            "messages": self.messages,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 2),
            "ok": self.ok,
            "notes": self.notes,
        }


class Stuck(Exception):
    """Raised when the farm does not catch up within the deadline (a stuck mailbox or a dead farm)."""


@dataclass
class Run:
    farm: Farm
    feeder: Feeder
    watcher: Watcher
    rng: random.Random
    size: Size
    notes: dict
    log: Callable[[str], None]

    def recover(self, fault_end: float, timeout: float = 120.0) -> float:
        """Seconds from fault_end until every message delivered so far is stored."""
        pending = list(self.feeder.deliveries)
        seen_at = self.watcher.wait_for(pending, timeout)
        if seen_at is None:
            missing = sum(1 for d in pending if d.sha256 not in self.watcher.seen)
            raise Stuck(f"not caught up {timeout:.0f}s after the fault: {missing} message(s) still missing")
        return max(0.0, seen_at - fault_end)

    def pause(self, low: float, high: float) -> None:
        faults.hold(self.rng.uniform(low, high))


# -- scenarios --------------------------------------------------------------


def worker_kill(run: Run) -> list[float]:
    """SIGKILL random workers at random moments (busy ones preferred), restarted by the supervisor."""
    workers, end = run.farm.workers, time.monotonic()
    group_kills = 0
    for _ in range(run.size.trials):
        run.pause(0.3, 2.5)
        _wait_alive(workers)
        busy = [w for w in workers if w.busy()]
        victim = run.rng.choice(busy if busy and run.rng.random() < 0.7 else workers)
        group = run.rng.random() < 0.8  # else the main process only: its work-horse finishes as an orphan
        group_kills += group
        down = run.rng.uniform(0.0, 1.0)
        victim.sigkill(hold=down, group=group)
        end = time.monotonic() + down
    run.notes["group_kills"] = group_kills
    _wait_alive(workers)
    return [run.recover(end)]


def scheduler_kill(run: Run) -> list[float]:
    """SIGKILL the scheduler, keep it down 1-4 s, let the supervisor restart it; repeat."""
    out = []
    for _ in range(run.size.trials):
        run.pause(1.0, 3.0)
        down = run.rng.uniform(1.0, 4.0)
        run.farm.schedulers[0].sigkill(hold=down)
        end = time.monotonic() + down
        _wait_alive(run.farm.schedulers)
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
        victim.sigkill(hold=2.0)
        end = time.monotonic() + 2.0
        out.append(run.recover(end))
        _wait_alive(run.farm.schedulers)
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


def _polls_by_host(hosts, since) -> dict[str, tuple[int, dict[int, object]]]:
    """host name -> (polls started since `since`, {mailbox id: its first poll's start}), from the poll runs' worker pids."""
    from mailq.models import PollRun

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
    from mailq.models import PollRun

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
    from mailq.models import utcnow

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


MIX_FAULTS = ["worker-kill", "scheduler-kill", "redis-flush", "redis-restart", "dovecot-down", "uidvalidity", "db-unavailable"]


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
            run.rng.choice(run.farm.workers).sigkill(hold=0.5)
            end = time.monotonic() + 0.5
            _wait_alive(run.farm.workers)
        elif kind == "scheduler-kill":
            run.farm.schedulers[0].sigkill(hold=2.0)
            end = time.monotonic() + 2.0
            _wait_alive(run.farm.schedulers)
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


def max_poll_gap() -> float | None:
    """Longest time between two poll starts of one mailbox (a stuck mailbox shows here), in seconds."""
    from mailq.models import PollRun

    try:
        last: dict[int, object] = {}
        worst = 0.0
        for mailbox_id, started in (
            PollRun.select(PollRun.mailbox, PollRun.started_at)
            .where(PollRun.outcome != "auth_error")
            .order_by(PollRun.mailbox, PollRun.started_at)
            .tuples()
        ):
            if mailbox_id in last:
                worst = max(worst, (started - last[mailbox_id]).total_seconds())
            last[mailbox_id] = started
        return round(worst, 1)
    except Exception:
        return None
    finally:
        db.close()


def _wait_alive(processes, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.alive() for p in processes):
        if time.monotonic() > deadline:
            raise Stuck("a killed process was not restarted")
        faults.hold(0.05)


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
        ),
    ]
}


def run_scenario(
    name: str,
    *,
    quick: bool,
    seed: int,
    db_kind: str,
    root: Path | None = None,
    keep: bool = False,
    log: Callable[[str], None] = print,
    size: Size | None = None,
) -> Result:
    """Set up a fresh farm, feed mail, inject the scenario's faults, drain, verify; never leaves a child behind."""
    scenario = SCENARIOS[name]
    size = size or (scenario.quick if quick else scenario.full)
    db_kind = scenario.db or db_kind
    rng = random.Random(f"{seed}:{name}")
    base = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-", dir=root))
    notes: dict = {}
    recoveries: list[float] = []
    started = time.monotonic()
    try:
        with Farm(base, db_kind=db_kind, interval=size.interval, storage=scenario.storage) as farm:
            users = farm.add_mailboxes(size.mailboxes)
            feeder = Feeder(farm.dovecot, users, size.rate, seed=rng.randrange(1 << 30))
            watcher = Watcher().start()
            try:
                if scenario.hosts:
                    farm.start_hosts(scenario.hosts, size.workers)
                else:
                    farm.start_farm(size.workers, schedulers=scenario.schedulers)
                feeder.start()
                run = Run(farm, feeder, watcher, rng, size, notes, log)
                faults.hold(1.0)  # some mail in flight, then make sure the farm works before any fault
                run.recover(time.monotonic(), timeout=90)
                log(f"  {name}: farm up, injecting")
                try:
                    recoveries = scenario.func(run)
                except Stuck as exc:
                    notes["problem"] = str(exc)
                feeder.stop()
                if watcher.wait_for(list(feeder.deliveries), DRAIN_TIMEOUT) is None:
                    notes.setdefault("problem", f"not drained within {DRAIN_TIMEOUT:.0f}s after the feed stopped")
            finally:
                feeder._stop.set()
                watcher.stop()
            verdict = verify_farm(farm)
            notes.update(
                crashes=farm.supervisor.crashes,
                kills=farm.supervisor.kills,
                db_errors_seen_by_harness=watcher.db_errors,
                max_poll_gap_s=max_poll_gap(),
            )
            for label in ("extra", "rekeyed", "mismatched", "blob_bad", "skipped"):
                if getattr(verdict, label):
                    notes[label] = getattr(verdict, label)
            if verdict.lost_detail:
                notes["lost_examples"] = verdict.lost_detail[:5]
            if verdict.dup_detail:
                notes["dup_examples"] = verdict.dup_detail[:5]
            notes["logs"] = str(base / "logs")
            notes.update(db=db_kind, storage=scenario.storage)
    except Exception as exc:
        notes["problem"] = f"harness error: {exc!r}"
        keep = True
        return Result(name, size.trials, 0, -1, -1, None, ok=False, notes=notes)
    finally:
        notes["elapsed_s"] = round(time.monotonic() - started, 1)
        if not keep and "problem" not in notes:
            shutil.rmtree(base, ignore_errors=True)
        else:
            notes["kept"] = str(base)
    ok = verdict.lost == 0 and verdict.duplicated == 0 and verdict.extra == 0 and "problem" not in notes
    return Result(
        name, size.trials, verdict.messages, verdict.lost, verdict.duplicated, max(recoveries) if recoveries else None, ok=ok, notes=notes
    )
