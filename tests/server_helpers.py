"""The sync suite's IMAP servers: the session's Dovecot and a private Cyrus (tests/testbed/cyrus.py).

A test that takes ``imap_server`` and ``server_user`` runs once per server
implementation; both objects offer what the sync tests use (``imap_port``,
``deliver``, ``deliver_many``, ``index``, ``message_count``, ``reset_uidvalidity``).
"""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import serve
from tests.testbed.cyrus import Cyrus

_cyrus_users = itertools.count(1)


@pytest.fixture(scope="session")
def cyrus(tmp_path_factory):
    yield from serve(Cyrus(tmp_path_factory.mktemp("cyrus")))


@pytest.fixture(params=["dovecot", "cyrus"])
def imap_server(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def server_user(request, imap_server):
    """A fresh, empty user on ``imap_server``: (username, password)."""
    if isinstance(imap_server, Cyrus):
        name = f"cy{next(_cyrus_users):04d}"
        imap_server.add_user(name, f"pw-{name}")
        return name, f"pw-{name}"
    return request.getfixturevalue("mail_user")
