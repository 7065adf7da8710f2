"""What every live view shares: the header, view tabs and banner, and the fetch/show split.

``fetch`` runs in the app's refresh worker thread and must not touch widgets;
``show`` runs on the UI thread with what ``fetch`` returned. The app decides
when to refresh (see ``MailqConsole.refresh_now``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header

from ..commands import for_scope
from ..widgets.banner import StatusBanner
from ..widgets.footer import FittingFooter
from ..widgets.nav import ViewTabs

if TYPE_CHECKING:
    from ..app import MailqConsole
    from ..source import Source


class LiveScreen(Screen):
    """A screen the app refreshes while it is on top."""

    SCOPE: ClassVar[str] = ""
    """Command-registry scope of this screen's actions."""
    VIEW: ClassVar[str] = ""
    """The view tab to highlight."""
    _binding_state: tuple[bool, ...] | None = None

    app: MailqConsole

    def compose_top(self) -> ComposeResult:
        yield Header(icon="✉")
        yield ViewTabs(self.VIEW)
        yield StatusBanner(id="banner")

    def compose_bottom(self) -> ComposeResult:
        yield FittingFooter()

    def fetch(self, source: Source) -> Any:
        """Read everything this screen shows (worker thread; blocking calls welcome)."""
        raise NotImplementedError

    def show(self, data: Any) -> None:
        """Put fetched data on screen (UI thread)."""
        raise NotImplementedError

    def problem(self, data: Any) -> str | None:
        """A partial outage reported inside otherwise good data (overview's redis_error)."""
        return None

    def on_screen_resume(self) -> None:
        self.app.show_problem_on(self)
        self.app.refresh_now()

    def update_bindings(self) -> None:
        """Refresh the footer only when an action became (in)applicable: the footer rebuild is not cheap."""
        state = tuple(bool(self.check_action(c.id, ())) for c in for_scope(self.SCOPE))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def set_banner(self, problem: str | None, retry_every: float | None) -> None:
        self.query_one(StatusBanner).show_problem(problem, retry_every)
