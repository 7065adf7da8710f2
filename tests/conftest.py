"""Real services for the tests: a private Dovecot and redis-server per session, PostgreSQL and SQLite.

Every test that takes ``settings`` runs on SQLite and on PostgreSQL (each test
gets a fresh PostgreSQL schema and a fresh SQLite file), with its own blob
directory and secret key, and a flushed private Redis.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from mailq import config, db, migrations
from tests.helpers import UserPool, serve
from tests.testbed import pg
from tests.testbed.dovecot import Dovecot
from tests.testbed.procs import compile_code
from tests.testbed.redisd import RedisServer

PG_ADMIN_DSN = os.environ.get("MAILQ_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_schema_ids = itertools.count(1)


def pytest_configure(config):
    os.environ.setdefault("TZ", "UTC")
    compile_code(Path(__file__).resolve().parent.parent)  # the farm tests start hundreds of mailq processes
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        # A private base directory: pytest resets the shared /tmp/pytest-of-<user> to mode 0700 at the
        # start of every session, which takes the +x that Dovecot's mail user needs away from a
        # Dovecot running under it in another session (STATUS then fails with SERVERBUG).
        config.option.basetemp = config._mailq_basetemp = tempfile.mkdtemp(prefix="mailq-pytest-")


def pytest_unconfigure(config):
    created = getattr(config, "_mailq_basetemp", None)
    if created:
        shutil.rmtree(created, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_database():
    """A throw-away PostgreSQL database for this test session (dropped at the end).

    Without PostgreSQL its tests skip, saying why; with ``CI=true`` they fail.
    """
    try:
        name, url = pg.create_database(PG_ADMIN_DSN, "mailq_test")
    except psycopg2.OperationalError as exc:
        reason = f"PostgreSQL unreachable at {PG_ADMIN_DSN} ({str(exc).strip().splitlines()[0]}): start it or set MAILQ_TEST_PG"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI is set: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    yield url
    db.close()
    pg.drop_database(PG_ADMIN_DSN, name)


def new_pg_schema_url(pg_database: str) -> str:
    """A fresh schema in the session database; the URL pins it with search_path for every process."""
    return pg.new_schema_url(pg_database, f"t{os.getpid()}_{next(_schema_ids)}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    yield from serve(RedisServer(tmp_path_factory.mktemp("redis")))


@pytest.fixture
def redis_url(redis_server):
    import redis

    if not redis_server.running():
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield redis_server.url
    if redis_server.running():
        client.flushdb()
    client.close()


_USERS = UserPool("pool", 400)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    server.add_users(_USERS.passwords())  # before start: free (a running Dovecot needs ~1 s to see new users)
    yield from serve(server)


@pytest.fixture
def mail_user(dovecot):
    """A fresh, empty IMAP user on the session's Dovecot: (username, password)."""
    return _USERS.take(dovecot)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mailq.db'}"
    return new_pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def bare_settings(tmp_path, database_url, redis_url):
    """Settings for this test, installed for the process, database bound but empty."""
    from cryptography.fernet import Fernet

    env = {
        "MAILQ_VAR_DIR": str(tmp_path / "var"),
        "MAILQ_DATABASE_URL": database_url,
        "MAILQ_STORAGE_URL": f"file://{tmp_path / 'var' / 'blobs'}",
        "MAILQ_REDIS_URL": redis_url,
        "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
        "MAILQ_CONNECT_TIMEOUT": "3",
        "MAILQ_READ_TIMEOUT": "5",
    }
    settings = config.load(env, env_file=None)
    config.use(settings)
    db.bind(settings.database_url)
    yield settings
    db.close()
    config.use(None)


@pytest.fixture
def settings(bare_settings):
    """Settings with the schema upgraded to head."""
    migrations.upgrade()
    return bare_settings
