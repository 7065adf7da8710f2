"""A reduced chaos run for CI: real SIGKILLs, FLUSHDB, a stopped Dovecot, UIDVALIDITY resets,
a locked or refusing database and a changed password, each on a fresh private farm.

Each must end with every message on the server stored exactly once (0 lost,
0 duplicated). The full-size figures come from `scripts/chaos` (docs/chaos.md).
"""

from __future__ import annotations

import pytest

from tests.chaos.runner import Size, run_scenario

pytestmark = pytest.mark.slow

SMALL = dict(mailboxes=5, rate=8, workers=2, interval=1)

CASES = [
    ("worker-kill", "sqlite", Size(trials=4, **SMALL)),
    ("scheduler-kill", "sqlite", Size(trials=1, **SMALL)),
    ("idler-kill", "sqlite", Size(trials=2, **SMALL)),
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


def test_losing_a_whole_host_loses_nothing_and_the_host_rejoins():
    """Two hosts (own working and var directories, host and worker names) on PostgreSQL + S3 (moto's
    server standing in for AWS), no shared file system; every process of one host SIGKILLed mid-ingest.
    Reduced from the chaos suite's 200 mailboxes to stay near a minute: `scripts/chaos --scenario host-loss`."""
    size = Size(mailboxes=24, rate=8, workers=2, interval=4, fault_s=2, trials=1)
    result = run_scenario("host-loss", quick=True, seed=7, db_kind="sqlite", size=size, log=lambda _: None)
    assert result.notes["db"] == "postgresql" and result.notes["storage"] == "s3"
    assert result.messages > 0, result.notes
    assert (result.lost, result.duplicated) == (0, 0), result.notes
    assert result.ok and result.recovery_s is not None, result.notes
    detail = result.notes["trials_detail"][0]
    assert detail["processes_killed"] == 3  # the host's scheduler and both workers
    polls = detail["polls_after_return"]
    assert polls[detail["victim"]] >= 0.3 * sum(polls.values())  # back and sharing the load
