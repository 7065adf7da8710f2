"""What a chaos scenario runs with: its sizes, its result, the `Run` it gets while mail arrives, and the
waits it uses (a restarted process, the longest gap between polls)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mailq import db
from mailq.models import PollRun
from tests.chaos import faults
from tests.chaos.farm import Farm
from tests.chaos.feed import Feeder, Watcher
from tests.testbed.waiting import wait_for

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


def max_poll_gap() -> float | None:
    """Longest time between two poll starts of one mailbox (a stuck mailbox shows here), in seconds."""
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


def wait_alive(processes, timeout: float = 15.0) -> None:
    wait_for(lambda: all(p.alive() for p in processes), timeout, "a killed process to be restarted", interval=0.05, error=Stuck)
