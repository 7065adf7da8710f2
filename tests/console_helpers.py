"""Helpers for the console tests: wait until the console is idle, read a table."""

from __future__ import annotations

import asyncio
import functools

from textual.pilot import Pilot

from tests.testbed.waiting import Deadline


def sync(test):
    """Run an async Pilot test with asyncio.run (no async pytest plugin needed); fixtures still work."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def settle(pilot: Pilot, timeout: float = 10.0) -> None:
    """Wait until no refresh or action is running and the screen has caught up."""
    app = pilot.app
    deadline = Deadline(timeout, "the console to settle", AssertionError)
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            await pilot.pause()
            if not app.busy:
                return
        deadline.check()


async def until(pilot: Pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    """Await ``predicate()`` becoming truthy while the app keeps running (refreshes included)."""
    deadline = Deadline(timeout, what, AssertionError)
    while not (value := predicate()):
        deadline.check()
        await pilot.pause(0.05)
    return value


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
            await until(pilot, lambda: app.refreshes >= 1 and not app.busy, timeout=20, what="the first refresh")
            await pilot.pause()
            return app.export_screenshot()

    try:
        return {view: asyncio.run(shoot(view)) for view in views}
    finally:
        config.use(None)
        db.close()
