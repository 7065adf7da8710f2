"""The mailq operator console: a Textual app over ``mailq.ops`` (through a ``Source``).

Refreshing: one ``@work(thread=True, exclusive=True)`` worker reads the screen on
top; the next refresh is scheduled only after the previous one has been shown,
so a slow Redis or database slows the console down instead of stacking reads.
Actions run in their own worker threads and report their outcome with
``notify``. When a read fails the data stays on screen, a banner says what is
down, and the next successful refresh clears it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.timer import Timer
from textual.worker import Worker

from mailq import config, files
from mailq.errors import MailqError

from . import commands
from .commands import APP, ConsoleCommands
from .screens.base import LiveScreen
from .screens.failed import FailedScreen
from .screens.help import HelpScreen
from .screens.mailboxes import MailboxesScreen
from .screens.messages import MessagesScreen
from .screens.overview import OverviewScreen
from .screens.queues import QueuesScreen
from .screens.schedule import ScheduleScreen
from .source import Source, describe_failure


class MailqConsole(App[None]):
    """Overview, mailboxes, queues & workers, failed jobs and schedule of one mailq farm."""

    TITLE = "mailq console"
    CSS_PATH = "console.tcss"
    BINDINGS = commands.bindings(APP)
    COMMANDS = App.COMMANDS | {ConsoleCommands}  # Textual's own entries are trimmed in get_system_commands
    MODES = {
        "overview": OverviewScreen,
        "mailboxes": MailboxesScreen,
        "queues": QueuesScreen,
        "failed": FailedScreen,
        "schedule": ScheduleScreen,
        "messages": MessagesScreen,
    }
    DEFAULT_MODE = "overview"

    def __init__(self, source: Source, view: str = "overview") -> None:
        self.DEFAULT_MODE = view  # start on that view without mounting the overview first
        super().__init__()
        self.source = source
        self.live = True
        self.problem: str | None = None
        self.refreshes = 0
        """Completed refreshes (tests wait on this)."""
        self.last_refresh_seconds: float | None = None
        self._timer: Timer | None = None
        self._in_flight = False
        self._again = False
        self.last_screenshot: Path | None = None

    @property
    def busy(self) -> bool:
        """A refresh or an action is running (tests wait for this to clear)."""
        return self._in_flight or any(w.is_running for w in self.workers)

    @property
    def refresh_scheduled(self) -> bool:
        """A timed refresh is pending (never while paused)."""
        return self._timer is not None

    @property
    def interval(self) -> float:
        return self.source.refresh_interval

    def on_mount(self) -> None:
        self._show_live_state()

    def on_unmount(self) -> None:
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    # Refreshing

    def _top_live_screen(self) -> LiveScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveScreen):
                return screen
        return None

    def refresh_now(self) -> None:
        """Refresh the screen on top now; if a refresh is running, once more right after it."""
        self._stop_timer()
        if self._in_flight:
            self._again = True
            return
        screen = self._top_live_screen()
        if screen is None:
            return
        self._in_flight = True
        self._refresh(screen)

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _refresh(self, screen: LiveScreen) -> None:
        started = time.perf_counter()
        data: Any = None
        failure: BaseException | None = None
        try:
            with self.source.session():
                data = screen.fetch(self.source)
        except Exception as exc:  # shown in the banner; the console keeps running
            failure = exc
        elapsed = time.perf_counter() - started
        try:
            self.call_from_thread(self._refreshed, screen, data, failure, elapsed)
        except RuntimeError:  # the app is shutting down
            pass

    def _refreshed(self, screen: LiveScreen, data: Any, failure: BaseException | None, elapsed: float) -> None:
        self.last_refresh_seconds = elapsed
        if failure is None:
            problem = screen.problem(data)
            if screen.is_attached:
                screen.show(data)
                screen.update_bindings()
        else:
            problem = describe_failure(failure)[1]
        self.problem = problem
        self.show_problem_on(screen)
        self.refreshes += 1

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Schedule the next refresh once the last one has completely finished (so none ever overlap)."""
        if event.worker.group != "refresh" or not event.worker.is_finished:
            return
        self._in_flight = False
        if self._again:
            self._again = False
            self.refresh_now()
        elif self.live:
            self._timer = self.set_timer(self.interval, self.refresh_now)

    def show_problem_on(self, screen: LiveScreen) -> None:
        if screen.is_attached:
            screen.set_banner(self.problem, self.interval if self.live else None)

    def _show_live_state(self) -> None:
        self.sub_title = f"live, every {self.interval:g} s" if self.live else "paused (space resumes)"

    # Actions shared by every screen

    def act(self, what: str, call: Callable[[Source], str], then: Callable[[], None] | None = None) -> None:
        """Run ``call`` off the UI thread; notify its message, or ``what failed: why``; then refresh."""
        self._act(what, call, then)

    @work(thread=True, group="actions", exit_on_error=False)
    def _act(self, what: str, call: Callable[[Source], str], then: Callable[[], None] | None) -> None:
        ok = False
        try:
            with self.source.session():
                message = call(self.source)
            ok = True
        except MailqError as exc:
            message = f"{what} failed: {exc}"
        except Exception as exc:
            message = f"{what} failed: {describe_failure(exc)[1]}"
        try:
            self.call_from_thread(self._acted, message, ok, then)
        except RuntimeError:
            pass

    def _acted(self, message: str, ok: bool, then: Callable[[], None] | None) -> None:
        self.notify(message, severity="information" if ok else "error", markup=False, timeout=4 if ok else 10)
        if ok and then is not None:
            then()
        self.refresh_now()

    def get_system_commands(self, screen):
        """Textual's palette entries minus those our registry has (Quit, Screenshot) or replaces (Keys: our Help)."""
        ours = {"Quit", "Keys", "Screenshot"}
        return (c for c in super().get_system_commands(screen) if c.title not in ours)

    async def action_view(self, name: str) -> None:
        """A number key shows that view itself, never a detail left open on it."""
        if name != self.current_mode:
            await self.switch_mode(name)
        while len(self.screen_stack) > 1:
            await self.pop_screen()

    def run_elsewhere(self, command: commands.Command) -> None:
        """From the palette: go to the action's view, then run it, or ask for the row it needs."""
        self.run_worker(self._run_elsewhere(command), group="palette", exit_on_error=False)

    async def _run_elsewhere(self, command: commands.Command) -> None:
        await self.action_view(command.home)
        if command.selection:  # never act on whatever row happens to be under the cursor
            self.notify(command.prompt(), markup=False, timeout=6)
            return
        await self.screen.run_action(command.action)

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """An SVG of the screen in MAILQ_VAR_DIR/screenshots (created, owner-only: it shows mailbox names)."""
        settings = getattr(self.source, "settings", None) or config.get()
        directory = files.private_dir(Path(path) if path else settings.var_dir / "screenshots")
        target = directory / (filename or f"mailq-console-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}.svg")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.export_screenshot())
        except OSError as exc:
            self.notify(f"Screenshot failed: {exc.strerror or exc} ({target})", severity="error", markup=False, timeout=10)
            return
        self.last_screenshot = target
        self.notify(f"Screenshot saved to {target.resolve()}", markup=False, timeout=8)

    def action_help(self) -> None:
        screen = self._top_live_screen()
        self.push_screen(HelpScreen(screen.SCOPE if screen else APP))

    def action_toggle_live(self) -> None:
        self.live = not self.live
        self._show_live_state()
        if self.live:
            self.notify(f"Live refresh on, every {self.interval:g} s", markup=False)
            self.refresh_now()
        else:
            self._stop_timer()
            self.notify("Live refresh paused; F5 refreshes once", markup=False)
        screen = self._top_live_screen()
        if screen is not None:
            self.show_problem_on(screen)

    def action_refresh(self) -> None:
        self.refresh_now()
