"""Console behaviour with the fixed data source: keys, filters, confirmations, palette, live refresh.

Fast (no Redis, no database); ``test_console_farm.py`` runs the same console
against real Redis and a real database.
"""

from __future__ import annotations

from datetime import timedelta

from textual.command import CommandPalette

from console.app import MailqConsole
from console.commands import COMMANDS, ConsoleCommands
from console.screens.confirm import ConfirmScreen
from console.screens.failed_detail import FailedJobScreen
from console.screens.mailbox_detail import MailboxScreen
from console.widgets.banner import StatusBanner
from console.widgets.keyed_table import KeyedTable
from mailq.errors import QueueError
from mailq.ops import MailboxRow
from tests.console_fixtures import HOSTILE, FixedSource
from tests.console_helpers import settle, sync, table_keys, until

SIZE = (140, 36)


@sync
async def test_the_filter_narrows_the_mailbox_table_by_text_and_state():
    app = MailqConsole(FixedSource(), view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        assert table.row_count == 8
        await pilot.press("slash", *"acme")
        await settle(pilot)
        assert table_keys(table) == ["1", "2", "5", "8"]
        await pilot.press(*" state:paused", "enter")
        await settle(pilot)
        assert table_keys(table) == ["5"]
        assert app.focused is table
        await pilot.press("slash", "escape")  # clears the filter
        await settle(pilot)
        assert table.row_count == 8
        await pilot.press("f", "f")  # state filter: all -> ok -> failing
        await settle(pilot)
        assert table_keys(table) == ["3", "7"]


@sync
async def test_the_requeue_all_confirmation_can_be_cancelled():
    source = FixedSource()
    app = MailqConsole(source, view="failed")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Requeue all 6 failed jobs?" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("enter")  # Cancel has the focus: Enter is the safe answer
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.calls == []
        assert len(source.failed) == 6
        await pilot.press("R", "y")
        await settle(pilot)
        assert source.calls == [("requeue_all_failed", None)]
        assert app.screen.query_one(KeyedTable).row_count == 0


@sync
async def test_delete_asks_first_and_escape_cancels():
    source = FixedSource()
    app = MailqConsole(source, view="failed")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert source.calls == []
        await pilot.press("d", "y")
        await settle(pilot)
        assert source.calls == [("delete_failed", ["poll-1-0001"])]


@sync
async def test_rows_update_in_place_and_the_cursor_stays_on_its_row():
    source = FixedSource()
    app = MailqConsole(source, view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        await pilot.press("down", "down", "down")  # mailbox 4
        assert table.current_key == "4"
        source.mailboxes.insert(0, MailboxRow(99, "aaa@new.example", "h", "ok", None, None, None, 0, 0, None))
        source.mailboxes[4].last_error = "changed"
        await pilot.press("f5")
        await settle(pilot)
        assert table_keys(table)[:2] == ["99", "1"]
        assert table.current_key == "4"
        assert table.get_row("4")[5].plain == "changed"  # the Last error column
        del source.mailboxes[4]  # the row under the cursor goes away: the cursor stays at that height
        await pilot.press("f5")
        await settle(pilot)
        assert "4" not in table_keys(table) and table.cursor_row == 4


@sync
async def test_enter_opens_detail_views_and_escape_returns():
    app = MailqConsole(FixedSource())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "down", "down")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MailboxScreen) and app.screen.mailbox_id == 3
        assert app.screen.query_one(KeyedTable).row_count == 6
        await pilot.press("escape")
        await pilot.press("4", "end", "enter")
        await settle(pilot)
        assert isinstance(app.screen, FailedJobScreen)
        assert "Traceback (most recent call last)" in str(app.screen.query_one("#traceback").render())


@sync
async def test_mailbox_actions_grey_out_when_they_do_not_apply():
    source = FixedSource()
    app = MailqConsole(source, view="mailboxes")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.check_action("pause", ()) is True and screen.check_action("resume", ()) is None
        assert screen.check_action("prev_page", ()) is None and screen.check_action("next_page", ()) is None
        await pilot.press("p")
        await settle(pilot)
        assert ("pause", 1) in source.calls
        assert screen.check_action("pause", ()) is None and screen.check_action("resume", ()) is True
        await pilot.press("p")  # greyed out: does nothing
        await pilot.press("u", "n", "t")
        await settle(pilot)
        assert source.calls == [("pause", 1), ("resume", 1), ("poll_now", [1]), ("test_login", 1)]


@sync
async def test_the_palette_offers_the_registry_actions_of_the_current_view():
    app = MailqConsole(FixedSource())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        provider = ConsoleCommands(app.screen)
        titles = {label for label, _, _ in provider._candidates()}
        assert {"Requeue", "Requeue all", "Delete", "Find job", "View: Mailboxes", "Help", "Quit"} <= titles
        assert "Poll now" not in titles and "Mailboxes: Poll now" in titles  # another view's action says where it runs
        await pilot.press("ctrl+p")
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"requeue all", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)


def test_every_registry_action_has_a_callable_on_its_scope():
    from console.app import MailqConsole as App_
    from console.screens.base import LiveScreen

    screens = {cls.SCOPE: cls for cls in _subclasses(LiveScreen)}
    for command in COMMANDS:
        for scope in command.scopes:
            owner = App_ if scope == "app" else screens[scope]
            assert callable(getattr(owner, f"action_{command.id}", None)), (command.id, scope)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@sync
async def test_mail_text_is_shown_literally():
    source = FixedSource()
    source.mailboxes[0].name = HOSTILE
    app = MailqConsole(source, view="mailboxes")
    async with app.run_test(size=(200, 36)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(KeyedTable)
        cell = table.get_row("1")[0]
        assert cell.plain.startswith("subject [bold red]x[/] \\x1b[31mred") and not cell.spans
        table.move_cursor(row=3)  # the cursor row is drawn bold; look at the row without it
        await pilot.pause()
        line = table.render_line(table.get_row_index("1") + 1)  # below the header
        text = "".join(segment.text for segment in line)
        assert "[bold red]x[/]" in text and "\\x1b[31m" in text and "\x1b" not in text
        assert not any(s.style and s.style.bold and "x[/]" in s.text for s in line)


@sync
async def test_live_refresh_can_be_paused_and_the_banner_comes_and_goes():
    source = FixedSource(refresh_interval=0.2)
    app = MailqConsole(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        banner = app.screen.query_one(StatusBanner)
        assert banner.has_class("-hidden")
        source.fail = QueueError("Redis unavailable at redis://127.0.0.1:1/0: Connection refused")
        await until(pilot, lambda: not banner.has_class("-hidden"), what="banner")
        assert "Connection refused" in str(banner.render())
        source.fail = None
        await until(pilot, lambda: banner.has_class("-hidden"), what="banner to go")
        await until(pilot, lambda: app.refresh_scheduled, what="a timed refresh pending while live")
        await pilot.press("space")
        assert app.sub_title.startswith("paused")
        await settle(pilot)
        count = app.refreshes
        assert not app.refresh_scheduled and not app.busy  # paused: nothing will refresh by itself
        assert app.refreshes == count
        await pilot.press("f5")
        await settle(pilot)
        assert app.refreshes == count + 1
        await pilot.press("space")
        await until(pilot, lambda: app.refreshes >= count + 3, what="refreshes to resume")


@sync
async def test_refreshes_never_stack_when_the_source_is_slow():
    import threading
    import time

    class Slow(FixedSource):
        running = 0
        most = 0
        lock = threading.Lock()

        def overview(self):
            with self.lock:
                Slow.running += 1
                Slow.most = max(Slow.most, Slow.running)
            time.sleep(0.15)
            with self.lock:
                Slow.running -= 1
            return super().overview()

    app = MailqConsole(Slow(refresh_interval=0.2))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(10):
            await pilot.press("f5")  # asks for a refresh while one runs
        await until(pilot, lambda: app.refreshes >= 4, what="refreshes")
        assert Slow.most == 1


def test_fixed_clock_makes_ago_texts_stable():
    from console.format import ago
    from tests.console_fixtures import FIXED_NOW

    assert ago(FIXED_NOW - timedelta(seconds=95), FIXED_NOW).plain == "1m ago"
    assert ago(FIXED_NOW + timedelta(seconds=30), FIXED_NOW).plain == "in 30s"
    assert ago(None, FIXED_NOW).plain == "—"


def test_the_console_command_rejects_a_too_short_refresh(capsys):
    from tests.helpers import run_cli

    result = run_cli(["console", "--refresh", "0.05"], capsys)
    assert result.code == 2 and "--refresh" in result.err
