"""Mailbox health states and poll outcomes, declared once.

String enums: a member *is* its stored value (``State.OK == "ok"``), so rows,
job results and ``--json`` output keep the same text they always had.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """``Mailbox.state``: the health state machine (see health.py). Pausing is a flag, not a state."""

    OK = "ok"
    FAILING = "failing"  # transient trouble, retried with backoff
    AUTH_ERROR = "auth_error"  # credentials rejected: no logins until they change or an operator resumes


PAUSED = "paused"
"""What the CLI and console show instead of the state of a paused mailbox (``Mailbox.display_state``)."""
DISPLAY_STATES: tuple[str, ...] = (*State, PAUSED)
"""Every state an operator sees, in the order lists and counts show them."""


class Outcome(StrEnum):
    """``PollRun.outcome`` and ``PollResult.outcome``."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"  # stopped at its budget, more mail waiting
    ERROR = "error"
    AUTH_ERROR = "auth_error"
    SKIPPED = "skipped"  # never recorded as a run: paused, parked, backing off, or another poll holds the mailbox
    ABANDONED = "abandoned"  # the worker died mid-poll
