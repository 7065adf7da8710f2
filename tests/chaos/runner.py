"""Run one scenario: a fresh private farm, mail fed while the fault is injected, then drain and verify.

Never leaves a child process behind; the farm's files are kept when something went wrong.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.chaos import faults
from tests.chaos.farm import Farm
from tests.chaos.feed import Feeder, Watcher
from tests.chaos.run import DRAIN_TIMEOUT, Result, Run, Size, Stuck, max_poll_gap
from tests.chaos.scenarios import SCENARIOS
from tests.chaos.verify import verify_farm

__all__ = ["Result", "Size", "run_scenario"]


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
                    farm.start_farm(size.workers, schedulers=scenario.schedulers, idlers=scenario.idlers)
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
