"""Worker logs: one line per poll that did something, nothing for an idle one, RQ's chatter only at DEBUG, JSON on request."""

from __future__ import annotations

import json
import logging

from mailq import config, logs

from .helpers import run_cli_process
from .imap_helpers import append

MAIL = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <log1@example.com>\r\n\r\nbody\r\n"
RQ_CHATTER = ("Job OK", "Successfully completed", "Result discarded", "Result is kept", "email: mailq.jobs.poll")


def _farm_env(tmp_path, redis_url, **extra) -> dict[str, str]:
    return {"MAILQ_VAR_DIR": str(tmp_path / "var"), "MAILQ_REDIS_URL": redis_url, "MAILQ_READ_TIMEOUT": "5", **extra}


def _mailbox(env, dovecot, user, password) -> None:
    assert run_cli_process(["db", "upgrade"], env).code == 0
    add = ["mailbox", "add", "box", "--host", "127.0.0.1", "--port", str(dovecot.imap_port), "--security", "plain"]
    added = run_cli_process([*add, "--username", user, "--password-stdin"], env, stdin=password + "\n")
    assert added.code == 0, added.err


def _poll_through_a_worker(env) -> list[str]:
    assert run_cli_process(["poll", "box"], env).code == 0
    worker = run_cli_process(["worker", "--burst"], env)
    assert worker.code == 0, worker.err
    return [line for line in (worker.out + worker.err).splitlines() if line.strip()]


def test_only_polls_that_did_something_log_a_line(tmp_path, redis_url, dovecot, mail_user):
    env = _farm_env(tmp_path, redis_url)
    _mailbox(env, dovecot, *mail_user)
    append(dovecot, *mail_user, MAIL)
    busy = _poll_through_a_worker(env)
    assert len(busy) == 1 and "mailq.poll INFO mailbox 1 (box): ok, 1 new" in busy[0], busy
    idle = _poll_through_a_worker(env)
    assert idle == [], idle  # idle and healthy: nothing to say


def test_debug_shows_rq_per_job_lines_and_the_idle_poll(tmp_path, redis_url, dovecot, mail_user):
    env = _farm_env(tmp_path, redis_url, MAILQ_LOG_LEVEL="DEBUG")
    _mailbox(env, dovecot, *mail_user)
    lines = _poll_through_a_worker(env)
    text = "\n".join(lines)
    assert any(marker in text for marker in RQ_CHATTER), text
    assert "mailbox 1 (box): ok, 0 new" in text


def test_json_lines_carry_the_poll_fields(tmp_path, redis_url, dovecot, mail_user):
    env = _farm_env(tmp_path, redis_url, MAILQ_LOG_FORMAT="json")
    _mailbox(env, dovecot, *mail_user)
    append(dovecot, *mail_user, MAIL)
    lines = _poll_through_a_worker(env)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) == 1, lines
    record = records[0]
    assert record["logger"] == "mailq.poll" and record["level"] == "INFO"
    assert record["mailbox_id"] == 1 and record["new"] == 1 and record["outcome"] == "ok" and record["state"] == "ok"
    assert record["ts"].endswith("Z")


def test_an_error_and_the_recovery_are_each_logged(tmp_path, redis_url, capfd):
    """A state change is news even when nothing new arrived: failing -> ok logs at INFO."""
    from mailq.poll import PollResult, log_outcome

    settings = config.load({"MAILQ_VAR_DIR": str(tmp_path)}, env_file=None)
    logs.setup(settings)
    try:
        log_outcome(PollResult(7, "error", error_class="connection", error_text="refused"), "b", "ok")
        log_outcome(PollResult(7, "ok"), "b", "failing")
        log_outcome(PollResult(7, "ok"), "b", "ok")
    finally:
        logging.getLogger().handlers.clear()
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert "WARNING mailbox 7 (b): error, 0 new" in lines[0] and "ok -> failing: refused" in lines[0]
    assert "INFO mailbox 7 (b): ok, 0 new" in lines[1] and "failing -> ok" in lines[1]


def test_bad_log_settings_are_refused_with_the_setting_named(tmp_path):
    for env, word in (({"MAILQ_LOG_FORMAT": "xml"}, "MAILQ_LOG_FORMAT"), ({"MAILQ_LOG_LEVEL": "loud"}, "MAILQ_LOG_LEVEL")):
        result = run_cli_process(["status"], {"MAILQ_VAR_DIR": str(tmp_path), **env})
        assert result.code == 1 and word in result.err and "Traceback" not in result.err, result.err
