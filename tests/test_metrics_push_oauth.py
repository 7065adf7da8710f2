"""Push connections and OAuth2 refresh outcomes in /metrics, from the idlers' and token cache's own records.

The token calls go to tests/oauth_server.py, the local authorization server
standing in for Google and Microsoft (which cannot run here).
"""

from __future__ import annotations

import pytest

from mailq.errors import GrantRevokedError
from mailq.models import Mailbox
from mailq.oauth import tokens
from mailq.push import leases
from mailq.queues import connect
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot, oauth_user

from .metrics_helpers import exporter, samples, value  # noqa: F401 (exporter: a fixture)

__all__ = ["auth_server", "auth_server_session", "oauth_dovecot", "oauth_user"]  # fixtures


def test_push_connections_are_counted_over_live_idlers_only(settings, exporter):
    conn = connect(settings)
    assert value(samples(exporter.base), "mailq_push_connections", state="connected") == 0
    leases.heartbeat(conn, "idler-a", 30)
    leases.publish_states(conn, "idler-a", {1: leases.CONNECTED, 2: leases.CONNECTED, 3: leases.RECONNECTING})
    leases.heartbeat(conn, "idler-b", 30)
    leases.publish_states(conn, "idler-b", {4: leases.PARKED, 5: leases.CONNECTED})
    s = samples(exporter.base)
    assert value(s, "mailq_push_connections", state="connected") == 3
    assert value(s, "mailq_push_connections", state="reconnecting") == 1 and value(s, "mailq_push_connections", state="parked") == 1
    leases.leave(conn, "idler-b")  # a clean exit: its connections are gone at once
    assert value(samples(exporter.base), "mailq_push_connections", state="connected") == 2


def test_oauth_refresh_outcomes_are_counted(settings, exporter, auth_server, oauth_dovecot, oauth_user):
    app = add_app(settings, auth_server)
    mb = add_oauth_mailbox(settings, oauth_dovecot, app, oauth_user, secret=auth_server.consent(app.name, oauth_user))
    tokens.access_token(settings, Mailbox.get_by_id(mb.id))
    auth_server.revoke_user(oauth_user)
    with pytest.raises(GrantRevokedError):
        tokens.access_token(settings, Mailbox.get_by_id(mb.id), rejected=tokens.access_token(settings, Mailbox.get_by_id(mb.id))[0])
    s = samples(exporter.base)
    assert value(s, "mailq_oauth_refreshes_total", outcome="ok") == 1
    assert value(s, "mailq_oauth_refreshes_total", outcome="revoked") == 1
    assert value(s, "mailq_oauth_refreshes_total", outcome="transient") == 0
