"""A farm of 50 OAuth2 mailboxes (tokens living 3 s) and 50 password mailboxes ingests everything once.

Real scheduler and worker processes, real Redis, a Dovecot that verifies every
XOAUTH2 token at tests/oauth_server.py (the local authorization server written
for the tests, standing in for Google/Microsoft). Tokens expire many times
during the run and refresh tokens rotate on every refresh (a replayed one would
revoke its family), so a refresh race or a lost rotation shows up as an
``auth_error``. About 30-50 s on the shared 2-core machine.
"""

from __future__ import annotations

import pytest

from mailq.models import Mailbox, OAuthToken
from tests.farm_helpers import add_mailboxes, duplicates, farm, stored  # noqa: F401
from tests.helpers import wait_for
from tests.oauth_helpers import add_app, add_oauth_mailbox, auth_server, auth_server_session, oauth_dovecot  # noqa: F401
from tests.testbed.mailgen import make_messages

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_fifty_oauth_and_fifty_password_mailboxes_ingest_everything_exactly_once(settings, oauth_dovecot, auth_server, farm):
    auth_server.access_ttl = 3
    app = add_app(settings, auth_server)
    users = [f"farm{i:02d}x{id(farm) % 10000}" for i in range(50)]
    oauth_dovecot.add_users({u: f"pw-{u}" for u in users})
    corpus = make_messages(40, seed=7, max_bytes=8_000)
    counts = [1 + i % 4 for i in range(50)]
    oauth_dovecot.deliver_many((u, corpus[(i + j) % len(corpus)]) for i, (u, n) in enumerate(zip(users, counts)) for j in range(n))
    oauth = [add_oauth_mailbox(settings, oauth_dovecot, app, u, secret=auth_server.consent(app.name, u), interval=1).id for u in users]
    plain = [m.id for m, _, _ in add_mailboxes(settings, oauth_dovecot, "fpw", counts, interval=1)]
    farm.configure(MAILQ_CONNECT_TIMEOUT=5, MAILQ_READ_TIMEOUT=10)
    farm.scheduler()
    for i in range(3):
        farm.worker(f"oauth-w{i}")

    wait_for(lambda: stored(oauth + plain) >= 2 * sum(counts), timeout=60, what="the first messages of all 100 mailboxes")
    # run on until every OAuth2 mailbox refreshed once more (its token expired again), then deliver again
    first = {u: auth_server.refreshes[u] for u in users}
    wait_for(lambda: all(auth_server.refreshes[u] > first[u] for u in users), timeout=40, what="one more refresh each")
    oauth_dovecot.deliver_many((u, corpus[(i + 7) % len(corpus)]) for i, u in enumerate(users))
    wait_for(lambda: stored(oauth) >= sum(counts) + len(users), timeout=30, what="the mail delivered after the refreshes")
    farm.assert_alive()

    assert stored(oauth) == sum(counts) + len(users) and stored(plain) == sum(counts)
    assert duplicates() == []
    states = {m.state for m in Mailbox.select().where(Mailbox.id.in_(oauth + plain))}
    assert states == {"ok"}, [(m.name, m.state, m.last_error) for m in Mailbox.select().where(Mailbox.state != "ok")][:3]
    assert {t.last_outcome for t in OAuthToken.select()} == {"ok"}
    assert min(auth_server.refreshes[u] for u in users) >= 2  # every token expired and was refreshed during the run
    # refresh calls equal successful refreshes: no call was wasted on a race, none was replayed
    assert auth_server.calls["refresh_token"] == sum(auth_server.refreshes.values())
