"""Helpers for the push (idler) tests: idler processes, Dovecot sessions, a Dovecot without IDLE."""

from __future__ import annotations

import re

from mailq.push import leases
from mailq.queues import connect
from tests.testbed.dovecot import Dovecot


def start_idler(farm, name: str):
    """An ``mailq idler`` subprocess of the farm (killed with the farm)."""
    from tests.testbed.procs import mailq_argv

    return farm._start(name, mailq_argv("idler", "--name", name))


def sessions(dovecot: Dovecot) -> dict[str, int]:
    """user -> IMAP sessions Dovecot holds for it right now (``doveadm who``)."""
    found: dict[str, int] = {}
    for line in dovecot.doveadm("who").splitlines()[1:]:
        m = re.match(r"^(\S+)\s+(\d+)\s+imap\b", line)
        if m:
            found[m.group(1)] = found.get(m.group(1), 0) + int(m.group(2))
    return found


def session_pids(dovecot: Dovecot, user: str) -> list[int]:
    for line in dovecot.doveadm("who").splitlines()[1:]:
        if line.split()[:1] == [user]:
            return [int(p) for p in re.findall(r"\d+", line.split("(", 1)[1].split(")", 1)[0])]
    return []


def holders(settings, mailbox_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    return leases.holders(connect(settings), mailbox_ids)


def connected_by(settings, mailbox_ids: list[int]) -> dict[int, str]:
    """mailbox id -> idler, for mailboxes an idler reports connected."""
    return {m: idler for m, (idler, state) in holders(settings, mailbox_ids).items() if state == leases.CONNECTED}


class NoIdleDovecot(Dovecot):
    """A real Dovecot that does not advertise IDLE (its capability list is set without it)."""

    def _write_config(self) -> None:
        super()._write_config()
        caps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ NAMESPACE UIDPLUS CHILDREN UNSELECT ESEARCH SEARCHRES"
        with open(self.conf_path, "a") as f:
            f.write(f"imap_capability = {caps}\n")
