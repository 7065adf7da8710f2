"""Fixtures for the S3 store: one private S3 API server (moto, see tests/testbed/s3d.py) per session.

moto's server stands in for AWS S3 here: it speaks the S3 HTTP API on
loopback and checks credentials, so boto3 and mailq take their real paths.
Test modules import the fixtures they use by name (``s3_server``, ``aws_env``, ``s3_url``).
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

from tests.helpers import serve
from tests.testbed.s3d import S3Server

_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    yield from serve(S3Server(tmp_path_factory.mktemp("s3")))


@pytest.fixture
def aws_env(s3_server, monkeypatch):
    """This process's standard AWS environment pointed at the private server (and nothing of the machine's)."""
    if not s3_server.running():
        s3_server.start()
    s3_server.resume()
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_url(s3_server, aws_env):
    """``s3://bucket/PREFIX`` with a prefix of its own per test, so tests never see each other's blobs."""
    return s3_server.url(f"t{os.getpid()}-{next(_prefixes)}-{uuid.uuid4().hex[:6]}")


def s3_settings(settings, url: str, **changes):
    """``settings`` with the S3 store (installed for the process, like the ``settings`` fixture)."""
    from mailq import config

    s = settings.replace(storage_url=url, **changes)
    config.use(s)
    return s
