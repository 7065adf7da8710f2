"""``mailq failed list|show|requeue|delete`` and ``mailq status``."""

from __future__ import annotations

import json

from .helpers import run_cli
from .test_ops import fail_jobs


def test_failed_list_show_requeue_and_delete(settings, capsys):
    ids = fail_jobs(settings, {"email": 2, "default": 1})
    listed = json.loads(run_cli(["failed", "list", "--json"], capsys).out)
    assert listed["total"] == 3 and {j["id"] for j in listed["jobs"]} == set(ids)
    assert all(j["error"].startswith("ValueError: boom") for j in listed["jobs"])
    table = run_cli(["failed", "list"], capsys)
    assert table.code == 0 and "ValueError" in table.out

    shown = json.loads(run_cli(["failed", "show", ids[0], "--json"], capsys).out)
    assert "Traceback" in shown["traceback"]

    assert run_cli(["failed", "requeue", ids[0]], capsys).out.strip() == "requeued 1 job(s)"
    assert run_cli(["failed", "delete", ids[1]], capsys).out.strip() == "deleted 1 job(s)"
    missing = run_cli(["failed", "delete", "no-such-job"], capsys)
    assert missing.code == 1 and "no failed job no-such-job" in missing.err
    assert run_cli(["failed", "requeue"], capsys).code == 2
    assert run_cli(["failed", "requeue", "--all"], capsys).out.strip() == "requeued 1 job(s)"
    assert json.loads(run_cli(["failed", "list", "--json"], capsys).out)["total"] == 0


def test_status_prints_tables_and_stable_json(settings, capsys):
    fail_jobs(settings, {"default": 1})
    data = json.loads(run_cli(["status", "--json"], capsys).out)
    assert list(data)[:4] == ["mailboxes", "queues", "workers", "failed"] and data["failed"] == 1
    text = run_cli(["status"], capsys)
    assert text.code == 0 and "email-high" in text.out and "scheduler: NOT RUNNING" in text.out


def test_status_with_redis_down_is_one_clear_error(settings, capsys, redis_server):
    redis_server.stop()
    try:
        result = run_cli(["status"], capsys)
    finally:
        redis_server.start()
    assert result.code == 1 and result.err.startswith("error: Redis unavailable") and "Traceback" not in result.err
