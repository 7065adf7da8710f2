"""No mailbox password leaks: not into Redis (any key, any type, rq's compressed job data), logs,
job arguments, `--json` output or a console screenshot; and stored secrets need the key.

One real farm run (scheduler + workers as processes, private Redis and Dovecot)
with known passwords, one of them changed on the server so the auth-failure
path (error texts, health, logs) runs too.
"""

from __future__ import annotations

import json
import pickle
import zlib

import pytest
import redis
from cryptography.fernet import Fernet

from mailq import crypto, db
from mailq.errors import SecretKeyError
from tests.chaos import faults
from tests.chaos.farm import Farm
from tests.console_helpers import screenshot_of_farm
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def _query(sql: str):
    try:
        return db.database.execute_sql(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def ran_farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    # DEBUG: every line any process can write is searched, RQ's per-job lines (dropped at INFO) included
    with Farm(root / "farm", db_kind="sqlite", interval=1, settings_env={"MAILQ_LOG_LEVEL": "DEBUG"}) as farm:
        users = farm.add_mailboxes(4, prefix="sec")
        original = dict(farm.passwords)
        for i, user in enumerate(users):
            farm.dovecot.deliver_many((user, f"Subject: hello {i}-{n}\r\n\r\nbody\r\n".encode()) for n in range(5))
        farm.start_farm(workers=2)
        wait_for(lambda: _query("SELECT count(*) FROM message")[0][0] >= 20, 60, "the first messages")
        victim = users[0]
        faults.change_password(farm, victim)
        wait_for(
            lambda: _query(f"SELECT state FROM mailbox WHERE id = {farm.mailbox_ids[victim]}")[0][0] == "auth_error",
            60,
            "the changed mailbox to reach auth_error",
        )
        passwords = sorted(set(original.values()) | set(farm.passwords.values()))
        yield farm, passwords


def _needles(passwords: list[str]) -> list[bytes]:
    return [p.encode() for p in passwords]


def _leaks(blob: bytes, needles: list[bytes]) -> list[str]:
    return [n.decode() for n in needles if n in blob]


def _redis_dump(url: str) -> list[tuple[str, bytes]]:
    """Every key of every type, as (key, bytes); rq job `data` is also zlib-decompressed and unpickled."""
    client = redis.Redis.from_url(url)
    out: list[tuple[str, bytes]] = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            name = key.decode(errors="replace")
            out.append((name, key))
            if kind == "string":
                out.append((name, client.get(key) or b""))
            elif kind == "hash":
                for field, value in client.hgetall(key).items():
                    out.append((f"{name}.{field.decode(errors='replace')}", field + b"=" + value))
                    if field == b"data":
                        try:
                            raw = zlib.decompress(value)
                        except zlib.error:
                            raw = value
                        out.append((f"{name}.data(decompressed)", raw))
                        try:
                            out.append((f"{name}.data(unpickled)", repr(pickle.loads(raw)).encode()))
                        except Exception:
                            pass
            elif kind == "list":
                out += [(name, v) for v in client.lrange(key, 0, -1)]
            elif kind == "set":
                out += [(name, v) for v in client.smembers(key)]
            elif kind == "zset":
                out += [(name, m + b" " + str(s).encode()) for m, s in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                for entry_id, fields in client.xrange(key):
                    out.append((name, entry_id + b" " + repr(fields).encode()))
            else:
                out.append((name, client.dump(key) or b""))
    finally:
        client.close()
    return out


def test_no_password_in_any_redis_key_or_value(ran_farm):
    farm, passwords = ran_farm
    dump = _redis_dump(farm.redis.url)
    assert any(name.startswith("rq:job:") for name, _ in dump), "the dump saw no rq job: the check would be vacuous"
    leaks = [(name, _leaks(value, _needles(passwords))) for name, value in dump if _leaks(value, _needles(passwords))]
    assert leaks == []


def test_no_password_in_job_arguments(ran_farm):
    from rq.job import Job

    farm, passwords = ran_farm
    client = redis.Redis.from_url(farm.redis.url)
    try:
        ids = [k.decode()[len("rq:job:") :] for k in client.scan_iter("rq:job:*")]
        jobs = [j for j in Job.fetch_many(ids, connection=client) if j is not None]
        assert jobs
        for job in jobs:
            text = repr((job.func_name, job.args, job.kwargs, job.description, job.meta)).encode()
            assert _leaks(text, _needles(passwords)) == [], job.id
            assert all(isinstance(a, int) for a in job.args), f"job arguments must be ids only: {job.args!r}"
    finally:
        client.close()


def test_no_password_in_any_log_line(ran_farm):
    farm, passwords = ran_farm
    logs = farm.logs().encode()
    assert b"poll" in logs  # the logs are really there
    assert _leaks(logs, _needles(passwords)) == []


def test_no_password_in_json_output(ran_farm):
    farm, passwords = ran_farm
    outputs = [
        farm.cli("mailbox", "list", "--json").stdout,
        farm.cli("status", "--json").stdout,
        farm.cli("messages", "list", "--json").stdout,
        farm.cli("failed", "list", "--json").stdout,
    ]
    for mailbox_id in farm.mailbox_ids.values():
        outputs.append(farm.cli("mailbox", "show", str(mailbox_id), "--json").stdout)
    first_message = _query("SELECT min(id) FROM message")[0][0]
    outputs.append(farm.cli("messages", "show", str(first_message), "--json").stdout)
    for text in outputs:
        json.loads(text)
        assert _leaks(text.encode(), _needles(passwords)) == []


def test_no_password_in_a_console_screenshot(ran_farm, tmp_path):
    farm, passwords = ran_farm
    shots = screenshot_of_farm(farm.env, ["overview", "mailboxes", "failed", "schedule"], size=(160, 45))
    assert "sec0001" in shots["mailboxes"]  # the screen really shows the mailboxes
    for view, svg in shots.items():
        (tmp_path / f"{view}.svg").write_text(svg)
        assert _leaks(svg.encode(), _needles(passwords)) == [], view


def test_stored_secrets_need_the_key(ran_farm):
    farm, passwords = ran_farm
    from mailq.models import Mailbox

    try:
        tokens = [m.secret for m in Mailbox.select()]
    finally:
        db.close()
    assert tokens
    other = farm.settings.replace(secret_key=Fernet.generate_key().decode())
    for token in tokens:
        assert crypto.decrypt(farm.settings, token) in passwords  # the right key works
        with pytest.raises(SecretKeyError):
            crypto.decrypt(other, token)
    raw = b"".join(p.read_bytes() for p in (farm.root / "var").glob("mailq.db*"))
    assert raw and _leaks(raw, _needles(passwords)) == []
