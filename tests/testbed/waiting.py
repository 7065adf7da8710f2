"""The one wait loop of the test bed, the tests, the chaos suite and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
    error: type[Exception] = TimeoutError,
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); ``error`` after ``timeout`` seconds.

    The first check is immediate and the pause grows from 5 ms to ``interval``,
    so a condition that is already true costs nothing and a slow one costs few checks.
    """
    deadline = time.monotonic() + timeout
    delay = min(0.005, interval)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, interval)
