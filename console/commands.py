"""The one command registry: every console action with its id, title, key and description.

It drives the key bindings (``bindings(scope)`` builds each screen's BINDINGS),
the command palette (``ConsoleCommands``) and the help screen, so a key, its
footer label and its palette entry can never disagree. An action's callable is
the Textual action method ``action_<id>`` on the app or on the screen of its
scope; whether it applies right now is that node's ``check_action``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

APP = "app"
"""Scope of actions available on every screen (views, help, live refresh, quit)."""

SCOPE_TITLES = {
    APP: "Everywhere",
    "overview": "Overview",
    "mailboxes": "Mailboxes",
    "mailbox": "Mailbox detail",
    "queues": "Queues & workers",
    "failed": "Failed jobs",
    "failed_job": "Failed job detail",
    "schedule": "Schedule",
    "messages": "Messages",
    "message": "Message detail",
}


@dataclass(frozen=True)
class Command:
    id: str
    title: str
    key: str
    description: str
    scopes: tuple[str, ...]
    footer: bool = True
    key_display: str | None = None
    label: str | None = None  # shorter footer label; the palette and help use ``title``
    argument: str | None = None  # passed to action_<id>(argument), e.g. the view name
    selection: str | None = None  # what the action works on ("a mailbox"): the palette asks for it elsewhere

    @property
    def action(self) -> str:
        """The Textual action string bound to the key."""
        return f"{self.id}({self.argument!r})" if self.argument is not None else self.id

    def target(self, app: App, screen: DOMNode) -> DOMNode:
        return app if APP in self.scopes else screen

    def available(self, app: App, screen: DOMNode) -> bool:
        """Applicable right now: in scope and not greyed out by ``check_action``."""
        if APP not in self.scopes and getattr(screen, "SCOPE", None) not in self.scopes:
            return False
        node = self.target(app, screen)
        args = (self.argument,) if self.argument is not None else ()
        return bool(node.check_action(self.id, args))

    def run(self, app: App, screen: DOMNode) -> None:
        """The callable: run the action on the app or the given screen."""
        node = self.target(app, screen)
        app.call_later(node.run_action, self.action)

    @property
    def home(self) -> str | None:
        """The view (app mode) where this action lives, for running it from the palette anywhere else."""
        return next((scope for scope in self.scopes if scope in VIEWS), None)

    def prompt(self) -> str:
        """What the palette says when the action needs a row chosen first."""
        key = self.key_display or self.key
        return f"{self.title}: select {self.selection} in {SCOPE_TITLES[self.home or APP]}, then press {key} (or Enter for its detail)"


VIEWS = ("overview", "mailboxes", "queues", "failed", "schedule", "messages")
"""The app's modes, in number-key order."""

MAILBOX = "a mailbox"
FAILED_JOB = "a failed job"


def _view(number: int, name: str, title: str) -> Command:
    return Command("view", title, str(number), f"Show the {title.lower()} view", (APP,), argument=name, footer=False)


COMMANDS: tuple[Command, ...] = (
    _view(1, "overview", "Overview"),
    _view(2, "mailboxes", "Mailboxes"),
    _view(3, "queues", "Queues & workers"),
    _view(4, "failed", "Failed jobs"),
    _view(5, "schedule", "Schedule"),
    _view(6, "messages", "Messages"),
    Command("help", "Help", "question_mark", "Show every key and action", (APP,), key_display="?"),
    Command(
        "toggle_live",
        "Pause / resume live refresh",
        "space",
        "Stop or restart the automatic refresh (the data stays on screen)",
        (APP,),
        key_display="space",
        label="Live",
    ),
    Command("refresh", "Refresh now", "f5", "Reload the current view at once", (APP,), footer=False),
    Command(
        "screenshot",
        "Screenshot",
        "ctrl+s",
        "Save an SVG picture of the screen under MAILQ_VAR_DIR/screenshots (the notice says where)",
        (APP,),
        footer=False,
    ),
    Command("quit", "Quit", "q", "Leave the console", (APP,)),
    # Lists
    Command(
        "open", "Open", "enter", "Open the selected row's detail", ("mailboxes", "failed", "messages"), footer=False, selection="a row"
    ),
    Command("filter", "Filter", "slash", "Filter mailboxes by text; 'state:failing' filters by state", ("mailboxes",), key_display="/"),
    Command(
        "cycle_state", "State filter", "f", "Cycle the state filter: all, ok, failing, auth_error, paused", ("mailboxes",), label="State"
    ),
    Command("filter_messages", "Filter", "slash", "Filter messages by subject or sender", ("messages",), key_display="/"),
    Command("find", "Find job", "slash", "Find failed jobs by id, function or error text", ("failed",), key_display="/"),
    Command(
        "prev_page",
        "Previous page",
        "left_square_bracket",
        "Show the previous page of rows",
        ("mailboxes", "failed", "schedule", "messages"),
        key_display="[",
        label="Prev",
    ),
    Command(
        "next_page",
        "Next page",
        "right_square_bracket",
        "Show the next page of rows",
        ("mailboxes", "failed", "schedule", "messages"),
        key_display="]",
        label="Next",
    ),
    # Mailbox actions
    Command(
        "poll_now", "Poll now", "n", "Enqueue a poll of the selected mailbox now", ("mailboxes", "mailbox"), selection=MAILBOX, label="Poll"
    ),
    Command(
        "pause", "Pause", "p", "Pause the mailbox: no more polls, its schedule is removed", ("mailboxes", "mailbox"), selection=MAILBOX
    ),
    Command(
        "resume",
        "Resume",
        "u",
        "Resume the mailbox: clears auth_error and backoff, schedules it again",
        ("mailboxes", "mailbox"),
        selection=MAILBOX,
    ),
    Command(
        "test_login",
        "Test login",
        "t",
        "Log in to the IMAP server once and report the outcome",
        ("mailboxes", "mailbox"),
        selection=MAILBOX,
    ),
    Command(
        "resync",
        "Resync schedules",
        "s",
        "Reconcile rq-scheduler's recurring polls with the database",
        ("mailboxes", "mailbox", "schedule", "overview"),
        label="Resync",
    ),
    # Failed jobs
    Command("requeue", "Requeue", "r", "Put the selected failed job back on its queue", ("failed", "failed_job"), selection=FAILED_JOB),
    Command("requeue_all", "Requeue all", "R", "Requeue every failed job (asks first, with the count)", ("failed",), key_display="R"),
    Command("delete", "Delete", "d", "Delete the selected failed job (asks first)", ("failed", "failed_job"), selection=FAILED_JOB),
    # Detail screens
    Command("back", "Back", "escape", "Close the detail view", ("mailbox", "failed_job", "message"), key_display="esc"),
)


def bindings(scope: str) -> list[Binding]:
    """The BINDINGS of a screen (or of the app for ``APP``), straight from the registry."""
    return [
        Binding(c.key, c.action, c.label or c.title, show=c.footer, key_display=c.key_display, tooltip=c.description)
        for c in COMMANDS
        if scope in c.scopes
    ]


def for_scope(scope: str) -> list[Command]:
    return [c for c in COMMANDS if scope in c.scopes]


class ConsoleCommands(Provider):
    """Command palette entries: every registry action of every view, each once.

    Actions of the screen the palette was opened on run there; another view's
    actions first switch to that view (``View name: Title``). An action that
    works on a selected row and has none asks for it (a notice: select one,
    then press its key) instead of doing something to a row nobody chose.
    Detail-only actions (Back) appear on their detail screen only.
    """

    def _candidates(self) -> list[tuple[str, Command, object]]:
        app, screen = self.app, self.screen
        here = getattr(screen, "SCOPE", None)
        found, seen = [], set()
        for command in COMMANDS:
            if (command.id, command.argument) in seen:
                continue
            if command.available(app, screen):
                label = command.title if command.id != "view" else f"View: {command.title}"
                found.append((label, command, partial(command.run, app, screen)))
            elif here in command.scopes and command.selection:
                found.append((command.title, command, partial(app.notify, command.prompt(), markup=False, timeout=6)))
            elif command.home is not None and APP not in command.scopes and command.home != here:
                found.append((f"{SCOPE_TITLES[command.home]}: {command.title}", command, partial(app.run_elsewhere, command)))
            else:
                continue
            seen.add((command.id, command.argument))
        return found

    async def discover(self) -> Hits:
        for label, command, run in self._candidates():
            yield DiscoveryHit(label, run, help=command.description)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, command, run in self._candidates():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), run, help=command.description)
