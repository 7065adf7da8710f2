"""Fault primitives, each real: SIGKILL, FLUSHDB, a stopped server, a held database lock, a changed password.

Durations are deliberate fault lengths (how long a server stays down), not
waits for an event, so they are plain timed waits.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import redis

from tests.chaos.farm import PG_ADMIN_DSN, Farm

_hold = threading.Event()  # never set: Event.wait(n) is an interruptible sleep for fault durations


def hold(seconds: float) -> None:
    """Keep a fault in place for `seconds` (a fault length, not a wait for an event)."""
    if seconds > 0:
        _hold.wait(seconds)


def redis_flush(farm: Farm) -> None:
    client = redis.Redis.from_url(farm.redis.url)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_down(farm: Farm, seconds: float) -> None:
    """Stop redis-server (all data gone: no persistence), keep it down, start it on the same port."""
    farm.redis.stop()
    hold(seconds)
    farm.redis.start_again(timeout=15)


def dovecot_down(farm: Farm, seconds: float) -> None:
    port = farm.dovecot.imap_port
    farm.dovecot.stop()
    hold(seconds)
    farm.dovecot.start()
    if farm.dovecot.imap_port != port:
        raise RuntimeError(f"dovecot came back on port {farm.dovecot.imap_port}, not {port}: the run is invalid")


def change_uidvalidity(farm: Farm, user: str, renumber: bool) -> None:
    """Keep the UIDs with a new UIDVALIDITY, or (renumber) forget the UID map: new UIDVALIDITY, UIDs from 1."""
    if renumber:
        farm.dovecot.renumber_uids(user)
        farm.dovecot.message_count(user)  # let Dovecot rebuild its index now, not inside a poll
    else:
        farm.dovecot.reset_uidvalidity(user)


_LOCKER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # hold the write lock until the harness closes our stdin
conn.execute("ROLLBACK")
"""


def database_unavailable(farm: Farm, seconds: float) -> None:
    """SQLite: another process holds a write lock (BEGIN IMMEDIATE). PostgreSQL: connections refused."""
    if farm.db_kind == "sqlite":
        path = farm.settings.database_url[len("sqlite:///") :]
        proc = subprocess.Popen([sys.executable, "-c", _LOCKER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()  # blocks until the lock is held (or the locker died)
            if line.strip() != "locked":
                raise RuntimeError("the SQLite locker could not take the write lock")
            hold(seconds)
        finally:
            try:
                proc.stdin.close()
                proc.wait(10)
            except Exception:
                pass
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{farm.pg_name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (farm.pg_name,))
        hold(seconds)
    finally:
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{farm.pg_name}" ALLOW_CONNECTIONS true')
        conn.close()


def change_password(farm: Farm, user: str) -> str:
    """A new password on the server only (the farm still has the old one); returns it."""
    new = farm.passwords[user] + "-changed"
    farm.dovecot.set_password(user, new)
    farm.passwords[user] = new
    return new


def failed_logins(farm: Farm, user: str) -> int:
    """Rejected logins for user so far, from Dovecot's log (auth_verbose: one line per attempt)."""
    try:
        text = farm.dovecot.log_path.read_text(errors="replace")
    except OSError:
        return 0
    return len(re.findall(rf"auth: Info: passwd-file\({re.escape(user)},[^)]*\): Password mismatch", text))


def queue_lengths(farm: Farm) -> dict[str, int]:
    """Jobs waiting in each RQ queue (a pile-up shows here)."""
    client = redis.Redis.from_url(farm.redis.url)
    try:
        return {k.decode().removeprefix("rq:queue:"): client.llen(k) for k in client.scan_iter("rq:queue:*") if client.type(k) == b"list"}
    except redis.RedisError:
        return {}
    finally:
        client.close()
