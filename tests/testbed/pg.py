"""Throw-away PostgreSQL databases for the tests and the chaos suite (never a shared one)."""

from __future__ import annotations

import uuid

import psycopg2


def _admin(admin_dsn: str):
    conn = psycopg2.connect(admin_dsn, connect_timeout=5)
    conn.autocommit = True
    return conn


def create_database(admin_dsn: str, prefix: str) -> tuple[str, str]:
    """Create ``<prefix>_<random>`` next to ``admin_dsn``'s database; returns (name, URL).

    Raises ``psycopg2.OperationalError`` when PostgreSQL cannot be reached.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return name, f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop it, ending whatever sessions are still connected."""
    conn = _admin(admin_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


def new_schema_url(database_url: str, schema: str) -> str:
    """A fresh schema in the database; the URL pins it with search_path for every process."""
    conn = _admin(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        conn.close()
    return f"{database_url}?options=-csearch_path%3D{schema}"
