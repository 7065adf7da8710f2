"""A worker's jobs reuse one database connection, and a broken one is replaced (real SQLite and PostgreSQL)."""

from __future__ import annotations

import psycopg2
import pytest

from mailq import db, jobs
from mailq.db import database
from mailq.models import Mailbox


@jobs._closes_db
def _job(fail: bool = False) -> int:
    count = Mailbox.select().count()
    if fail:
        raise RuntimeError("boom")
    return count


def test_jobs_reuse_the_connection_and_a_failed_job_closes_it(settings):
    assert _job() == 0
    first = database.connection()
    assert _job() == 0 and database.connection() is first  # no connect per job
    with pytest.raises(RuntimeError):
        _job(fail=True)
    assert database.is_closed()  # a failed job may have broken it: the next job opens a fresh one
    assert _job() == 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_the_server_killed_is_replaced_before_the_next_job(settings):
    assert _job() == 0
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    admin = psycopg2.connect(settings.database_url.split("?")[0])
    admin.autocommit = True
    with admin.cursor() as cur:  # what a PostgreSQL restart does to every open connection
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    assert _job() == 0  # revived: no "server closed the connection" for this job
    assert database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid
    db.close()
