"""Helpers for the console tests: wait until the console is idle, read a table."""
from __future__ import annotations

import asyncio
import functools
import time

from textual.pilot import Pilot


def sync(test):
    """Run an async Pilot test with asyncio.run (no async pytest plugin needed); fixtures still work."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return wrapper


async def settle(pilot: Pilot, timeout: float = 10.0) -> None:
    """Wait until no refresh or action is running and the screen has caught up."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            await pilot.pause()
            if not app.busy:
                return
        if time.monotonic() > deadline:
            raise AssertionError("console did not settle")


async def until(pilot: Pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    """Await ``predicate()`` becoming truthy while the app keeps running (refreshes included)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def table_keys(table) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
