"""Poll now, pause, resume, test login and resync: shared by the mailbox list and the detail view."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailq.imap import Probe
from mailq.states import PAUSED, State
from mailq.text import literal

if TYPE_CHECKING:
    from ..source import Source

MAILBOX_ACTIONS = ("poll_now", "pause", "resume", "test_login")


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    state: str


def _describe_probe(probe: Probe) -> str:
    """A short outcome for a successful login: what the server offers."""
    if probe.capabilities:
        names = probe.capabilities
        return f" (server offers {', '.join(literal(n, 20) for n in names[:8])}{'…' if len(names) > 8 else ''})"
    return ""


class MailboxActions:
    """Mixin for screens that have a current mailbox (``target()``)."""

    def target(self) -> Target | None:
        raise NotImplementedError

    def check_mailbox_action(self, action: str) -> bool | None:
        """None (greyed out) when no mailbox is selected or the action does not apply to its state."""
        target = self.target()
        if target is None:
            return None
        if action == "pause" and target.state == PAUSED:
            return None
        if action == "resume" and target.state not in (PAUSED, State.AUTH_ERROR):
            return None
        return True

    def action_poll_now(self) -> None:
        if (t := self.target()) is None:
            return
        name = literal(t.name, 60)

        def call(source: Source) -> str:
            job_ids = source.poll_now([t.id])
            return f"Poll of {name} enqueued" + (f" (job {job_ids[0]})" if job_ids else " (one is already queued)")

        self.app.act(f"Poll of {name}", call)

    def action_pause(self) -> None:
        if (t := self.target()) is None:
            return
        name = literal(t.name, 60)

        def call(source: Source) -> str:
            source.pause(t.id)
            return f"{name} paused; its recurring poll is removed"

        self.app.act(f"Pausing {name}", call)

    def action_resume(self) -> None:
        if (t := self.target()) is None:
            return
        name = literal(t.name, 60)

        def call(source: Source) -> str:
            source.resume(t.id)
            return f"{name} resumed and scheduled again"

        self.app.act(f"Resuming {name}", call)

    def action_test_login(self) -> None:
        if (t := self.target()) is None:
            return
        name = literal(t.name, 60)
        self.app.notify(f"Logging in to {name}…", markup=False, timeout=2)

        def call(source: Source) -> str:
            return f"Login to {name} OK{_describe_probe(source.test_login(t.id))}"

        self.app.act(f"Login to {name}", call)

    def action_resync(self) -> None:
        resync(self.app)


def resync(app, then: Callable[[], None] | None = None) -> None:
    """Reconcile recurring polls with the database and say what changed; ``then`` runs after a success."""

    def call(source: Source) -> str:
        report = source.resync()
        return (
            f"Schedules resynced: {len(report.added)} added, {len(report.removed)} removed, "
            f"{len(report.updated)} updated, {report.unchanged:,} unchanged"
        )

    app.act("Resync", call, then)
