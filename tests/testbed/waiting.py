"""The one wait loop of the test bed, the tests, the chaos suite and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """An absolute deadline; ``check()`` raises ``error`` naming ``what`` once it has passed.

    For loops that cannot use ``wait_for`` (an async test awaiting the app between checks).
    """

    def __init__(self, timeout: float, what: str, error: type[Exception] = TimeoutError):
        self.timeout, self.what, self.error = timeout, what, error
        self.end = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise self.error(f"timed out after {self.timeout:g}s waiting for {self.what}")


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
    deadline = Deadline(timeout, what, error)
    delay = min(0.005, interval)
    while not (value := predicate()):
        deadline.check()
        time.sleep(delay)
        delay = min(delay * 2, interval)
    return value
