"""Push parts against real Dovecot and Redis: the IDLE client, leases, the scheduler's skip rule, the surfaces."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailq import mailboxes
from mailq.errors import AuthError
from mailq.models import Mailbox, utcnow
from mailq.push import leases, status
from mailq.push.client import IdleClient
from mailq.push.idler import backoff
from mailq.push.targets import Targets, push_folder
from mailq.queues import connect

from .helpers import run_cli, wait_for


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.mark.parametrize("security", ["ssl", "starttls", "plain"])
def test_the_idle_client_hears_new_mail_within_a_second(dovecot, mail_user, security):
    user, password = mail_user
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port

    async def scenario():
        client = IdleClient("dovecot")
        await client.open("127.0.0.1", port, security, dovecot.ssl_context() if security != "plain" else None, 5)
        await client.login(user, password, 5)
        assert "IDLE" in client.capabilities
        await client.examine("INBOX", 5)
        before = client.uidnext
        await client.idle(5)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        append = loop.run_in_executor(None, dovecot.append_imap, user, password, b"Subject: push\r\n\r\nhello\r\n")
        event = await client.wait(10)
        latency = time.monotonic() - started
        await append
        assert event is not None and event.new_mail and client.exists == 1
        await client.done(5)
        await client.logout(5)
        return before, latency

    before, latency = _run(scenario())
    assert before == 1
    assert latency < 1.5


def test_a_wrong_password_is_an_auth_error_that_never_shows_the_password(dovecot, mail_user):
    user, _ = mail_user

    async def scenario():
        client = IdleClient("dovecot")
        await client.open("127.0.0.1", dovecot.imap_port, "plain", None, 5)
        try:
            await client.login(user, 'wrong "pass\\word', 5)
        finally:
            client.close()

    with pytest.raises(AuthError) as caught:
        _run(scenario())
    assert "AUTHENTICATIONFAILED" in str(caught.value) and "wrong" not in str(caught.value)


def test_a_non_ascii_password_goes_as_a_literal(dovecot):
    dovecot.add_user("pushliteral", "pässwörd")

    async def scenario():
        client = IdleClient("dovecot")
        await client.open("127.0.0.1", dovecot.imap_port, "plain", None, 5)
        await client.login("pushliteral", "pässwörd", 5)
        await client.logout(5)

    _run(scenario())


def test_leases_have_one_holder_lapse_when_not_renewed_and_report_loss(redis_url, settings):
    conn = connect(settings)
    assert leases.claim(conn, "a", [1, 2, 3], 2, ttl=1.0) == [1, 2]
    assert leases.claim(conn, "b", [1, 2, 3], 5, ttl=1.0) == [3]
    assert leases.renew(conn, "a", [1, 2, 3], 1.0) == [3]  # 3 is b's
    wait_for(lambda: not leases.holders(conn, [1, 2]), timeout=5, what="a's leases to lapse (a lease is a TTL)")
    assert leases.claim(conn, "b", [1, 2], 5, ttl=5.0) == [1, 2]
    assert leases.renew(conn, "a", [1, 2], 5.0) == [1, 2]
    leases.release(conn, "a", [1, 2])  # not a's any more: untouched
    assert set(leases.holders(conn, [1, 2, 3])) == {1, 2}


def test_the_scheduler_skips_a_pushed_mailbox_until_its_safety_poll_and_not_once_the_idler_is_gone(settings):
    conn = connect(settings)
    assert 7 not in status.skip_scheduled_polls(conn, [7], 900), "no idler: poll"
    leases.claim(conn, "idler-x", [7], 1, ttl=1.0)
    leases.publish_states(conn, "idler-x", {7: leases.RECONNECTING})
    assert 7 not in status.skip_scheduled_polls(conn, [7], 900), "not connected: poll"
    leases.publish_states(conn, "idler-x", {7: leases.CONNECTED})
    assert 7 not in status.skip_scheduled_polls(conn, [7], 900), "first safety poll is due at once"
    assert 7 in status.skip_scheduled_polls(conn, [7], 900), "then skipped for the safety interval"
    wait_for(lambda: not leases.holders(conn, [7]), timeout=5, what="the dead idler's lease to lapse")
    assert 7 not in status.skip_scheduled_polls(conn, [7], 900), "idler gone: the normal interval again"


def test_reconnect_backoff_grows_is_capped_and_jittered():
    import random

    rng = random.Random(1)
    first = [backoff(1, rng) for _ in range(200)]
    assert min(first) >= 0.5 and max(first) <= 1.5 and len({round(x, 3) for x in first}) > 100
    assert 4 <= backoff(4, rng) <= 12 and backoff(40, rng) <= 300
    assert push_folder(["Sent", "inbox"]) == "inbox" and push_folder(["Tickets"]) == "Tickets"


def test_push_is_set_per_mailbox_by_the_cli_and_the_csv_and_shown(settings, dovecot, capsys, tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        "name,host,port,security,username,password,push\n"
        f"p-on,127.0.0.1,{dovecot.imap_port},plain,u1,pw,on\n"
        f"p-off,127.0.0.1,{dovecot.imap_port},plain,u2,pw,off\n"
        f"p-auto,127.0.0.1,{dovecot.imap_port},plain,u3,pw,\n"
        f"p-bad,127.0.0.1,{dovecot.imap_port},plain,u4,pw,sometimes\n"
    )
    result = run_cli(["mailbox", "import", str(csv)], capsys)
    assert "push: 'sometimes' is not one of auto, on, off" in result.err
    assert [mailboxes.get(n).push for n in ("p-on", "p-off", "p-auto")] == ["on", "off", "auto"]

    result = run_cli(["mailbox", "show", "p-off", "--json"], capsys)
    assert '"push": "off"' in result.out and '"push_state": "polled"' in result.out
    result = run_cli(["mailbox", "show", "p-on"], capsys)
    assert "polled only until its first poll ends (then pushed)" in result.out
    Mailbox.update(last_poll_at=utcnow()).where(Mailbox.name == "p-on").execute()
    result = run_cli(["mailbox", "show", "p-on"], capsys)
    assert "polled only: no idler holds it" in result.out

    conn = connect(settings)
    box = mailboxes.get("p-on")
    leases.claim(conn, "idler-t", [box.id], 1, ttl=30)
    leases.publish_states(conn, "idler-t", {box.id: leases.CONNECTED})
    result = run_cli(["mailbox", "show", "p-on"], capsys)
    assert "pushed: IDLE connected (idler idler-t)" in result.out
    result = run_cli(["mailbox", "list"], capsys)
    assert "pushed" in result.out


def test_the_idlers_targets_follow_the_database_and_reload_only_changed_rows(settings, dovecot):
    specs = [
        mailboxes.validate(name=f"t{i}", host="127.0.0.1", port=dovecot.imap_port, security="plain", username=f"t{i}", password="pw")
        for i in range(4)
    ]
    ids = [mailboxes.save(settings, spec)[0].id for spec in specs]
    conn = connect(settings)
    targets = Targets()
    assert targets.refresh(conn) == {}, "no mailbox has had its first poll: none is pushed yet"
    Mailbox.update(last_poll_at=utcnow(), updated_at=utcnow()).where(Mailbox.id.in_(ids[1:])).execute()
    assert sorted(targets.refresh(conn)) == ids[1:], "pushed from the first finished poll on"
    Mailbox.update(last_poll_at=utcnow(), updated_at=utcnow()).where(Mailbox.id == ids[0]).execute()
    first = targets.refresh(conn)
    assert sorted(first) == ids and first[ids[0]].folder == "INBOX" and first[ids[0]].uidnext is None

    mailboxes.set_paused(Mailbox.get_by_id(ids[0]), True)
    Mailbox.update(push="off", updated_at=utcnow()).where(Mailbox.id == ids[1]).execute()
    leases.mark_noidle(conn, ids[2])
    mailboxes.save(settings, mailboxes.validate(**{**vars(specs[3]), "password": "new"}))
    second = targets.refresh(conn)
    assert sorted(second) == [ids[3]]
    assert second[ids[3]].secret != first[ids[3]].secret, "a changed row is read again"
    assert targets.refresh(conn)[ids[3]] is second[ids[3]], "an unchanged row is not"
