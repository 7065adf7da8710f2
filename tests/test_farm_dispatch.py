"""Dispatch through the real farm: hook and webhook once per message; a failing hook retried, failed, requeued."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailq import ops
from mailq.models import Message

from .farm_helpers import add_mailboxes, farm, stored  # noqa: F401
from .helpers import run_cli, wait_for
from .test_dispatch import Receiver, hook_log

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver():
    r = Receiver("farm-secret")
    yield r
    r.close()


def _hooked(farm, tmp_path, receiver=None, **env) -> Path:
    log = tmp_path / "hook.log"
    farm.configure(
        PYTHONPATH=str(REPO),
        MAILQ_HOOK="tests.test_dispatch:recording_hook",
        MAILQ_TEST_HOOK_LOG=log,
        MAILQ_TEST_HOOK_FAIL=tmp_path / "fail.flag",
        **env,
    )
    if receiver is not None:
        farm.configure(MAILQ_WEBHOOK_URL=receiver.url, MAILQ_WEBHOOK_SECRET=receiver.secret)
    return log


def test_every_new_message_reaches_the_hook_and_the_webhook_exactly_once(settings, dovecot, farm, tmp_path, receiver):
    log = _hooked(farm, tmp_path, receiver)
    boxes = add_mailboxes(settings, dovecot, "hook", [3, 2, 4], interval=1)
    ids = [m.id for m, _, _ in boxes]
    farm.scheduler()
    farm.worker("hook-w0")
    farm.worker("hook-w1")
    wait_for(
        lambda: stored(ids) == 9 and len(hook_log(log)) >= 9 and len(receiver.ids()) >= 9, timeout=60, what="nine messages handed over"
    )
    wait_for(lambda: Message.select().where(Message.dispatched_at.is_null()).count() == 0, timeout=10, what="all marked dispatched")
    farm.assert_alive()
    messages = sorted(m.id for m in Message.select())
    assert sorted(hook_log(log)) == messages and sorted(receiver.ids()) == messages
    assert receiver.bad_signatures == 0
    jobs = ops.queue_stats(settings)[2]
    assert jobs.name == "workflow" and jobs.failed == 0


def test_a_failing_hook_is_retried_then_failed_and_requeue_delivers_it(settings, dovecot, farm, tmp_path, capsys):
    log = _hooked(farm, tmp_path, MAILQ_DISPATCH_RETRY_DELAYS="1,1,1")
    flag = tmp_path / "fail.flag"
    flag.touch()
    boxes = add_mailboxes(settings, dovecot, "fail", [2], interval=1)
    farm.scheduler()
    farm.worker("fail-w0")

    wait_for(lambda: ops.queue_stats(settings)[2].failed == 1, timeout=60, what="the dispatch in the failed registry")
    attempts = hook_log(log, ".attempts")
    assert len(attempts) == 2 * 4, "two messages, one try and three retries each"
    assert hook_log(log) == []
    listed = json.loads(run_cli(["failed", "list", "--json"], capsys).out)
    assert listed["total"] == 1
    failed = listed["jobs"][0]
    assert failed["function"] == "mailq.jobs.dispatch" and "test flag set" in failed["error"]

    flag.unlink()
    result = run_cli(["failed", "requeue", failed["id"]], capsys)
    assert result.code == 0 and "requeued 1" in result.out
    wait_for(lambda: len(hook_log(log)) == 2, timeout=30, what="delivery after requeue")
    assert sorted(hook_log(log)) == sorted(m.id for m in Message.select())
    assert ops.queue_stats(settings)[2].failed == 0
    assert stored([boxes[0][0].id]) == 2
