"""A reduced chaos run for CI: real SIGKILLs, FLUSHDB, a stopped Dovecot, UIDVALIDITY resets,
a locked or refusing database and a changed password, each on a fresh private farm.

Each must end with every message on the server stored exactly once (0 lost,
0 duplicated). The full-size figures come from `scripts/chaos` (docs/chaos.md).
"""

from __future__ import annotations

import pytest

from tests.chaos.scenarios import Size, run_scenario

pytestmark = pytest.mark.slow

SMALL = dict(mailboxes=5, rate=8, workers=2, interval=1)

CASES = [
    ("worker-kill", "sqlite", Size(trials=4, **SMALL)),
    ("scheduler-kill", "sqlite", Size(trials=1, **SMALL)),
    ("redis-flush", "sqlite", Size(trials=1, **SMALL)),
    ("dovecot-down", "sqlite", Size(trials=1, fault_s=3, **SMALL)),
    ("uidvalidity", "sqlite", Size(trials=2, **SMALL)),
    ("db-unavailable", "sqlite", Size(trials=1, fault_s=4, **SMALL)),
    ("db-unavailable", "postgresql", Size(trials=1, fault_s=4, **SMALL)),
    ("password-change", "sqlite", Size(**SMALL)),
]


@pytest.mark.parametrize("name,db_kind,size", CASES, ids=[f"{n}-{d}" for n, d, _ in CASES])
def test_nothing_is_lost_or_stored_twice_under_faults(name, db_kind, size):
    # root=None: the system temp dir; pytest's deep tmp paths overflow Dovecot's unix socket names
    result = run_scenario(name, quick=True, seed=7, db_kind=db_kind, size=size, log=lambda _: None)
    assert result.messages > 0, result.notes
    assert (result.lost, result.duplicated) == (0, 0), result.notes
    assert result.ok, result.notes
    if name == "password-change":
        assert result.notes["victim_state"] == "auth_error"
        assert result.notes["failed_logins"] == 1
