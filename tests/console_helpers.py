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


def screenshot_of_farm(env: dict[str, str], views: list[str], size: tuple[int, int] = (160, 45)) -> dict[str, str]:
    """SVG screenshots of a real farm's console (real data source), one per view, after its first refresh."""
    from console.app import MailqConsole
    from console.source import OpsSource
    from mailq import config, db

    settings = config.load(env, env_file=None)
    config.use(settings)
    db.bind(settings.database_url)

    async def shoot(view: str) -> str:
        app = MailqConsole(OpsSource(settings, refresh_interval=60), view=view)
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 20
            while (app.refreshes < 1 or app.busy) and time.monotonic() < deadline:
                await pilot.pause(0.1)
            await pilot.pause()
            return app.export_screenshot()

    try:
        return {view: asyncio.run(shoot(view)) for view in views}
    finally:
        config.use(None)
        db.close()
