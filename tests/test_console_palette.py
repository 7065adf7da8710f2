"""The palette offers every action of every view once, number keys always show the view, screenshots land in MAILQ_VAR_DIR."""

from __future__ import annotations

import stat

from console.app import MailqConsole
from console.commands import COMMANDS, ConsoleCommands
from console.screens.mailbox_detail import MailboxScreen
from console.screens.mailboxes import MailboxesScreen
from console.widgets.filter_bar import FilterBar
from mailq import config
from tests.console_fixtures import FixedSource
from tests.console_helpers import settle, sync

SIZE = (140, 36)


def _entries(app) -> list[tuple[str, object]]:
    return [(label, command) for label, command, _ in ConsoleCommands(app.screen)._candidates()]


def _palette_titles(app) -> list[str]:
    """Everything the palette lists: our registry plus what is left of Textual's system commands."""
    return [label for label, _ in _entries(app)] + [c.title for c in app.get_system_commands(app.screen)]


@sync
async def test_every_action_of_every_view_is_offered_once_from_any_view():
    app = MailqConsole(FixedSource())
    async with app.run_test(size=SIZE) as pilot:
        for key in "123456":
            await pilot.press(key)
            await settle(pilot)
            titles = _palette_titles(app)
            assert len(titles) == len(set(titles)), titles
            assert titles.count("Quit") == 1 and "Keys" not in titles and titles.count("Screenshot") == 1
            offered = {(c.id, c.argument) for _, c in _entries(app)}
            here = app.screen.SCOPE
            # Back belongs to a detail screen; paging is offered where there is a page to turn (one page here)
            wanted = {(c.id, c.argument) for c in COMMANDS if c.id != "back" and not (c.id.endswith("_page") and here in c.scopes)}
            assert wanted <= offered, wanted - offered


@sync
async def test_another_views_action_that_needs_a_row_switches_there_and_asks_for_one():
    source = FixedSource()
    app = MailqConsole(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        entries = {label: run for label, _, run in ConsoleCommands(app.screen)._candidates()}
        entries["Mailboxes: Poll now"]()
        await settle(pilot)
        assert isinstance(app.screen, MailboxesScreen)
        assert not [c for c in source.calls if c[0] == "poll_now"]  # nobody chose a mailbox: nothing polled
        notes = [n.message for n in app._notifications]
        assert any("select a mailbox in Mailboxes, then press n" in m for m in notes), notes


@sync
async def test_another_views_action_without_a_row_runs_there():
    app = MailqConsole(FixedSource())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        entries = {label: run for label, _, run in ConsoleCommands(app.screen)._candidates()}
        entries["Mailboxes: Filter"]()
        await settle(pilot)
        assert isinstance(app.screen, MailboxesScreen)
        assert app.screen.query_one(FilterBar).display


@sync
async def test_number_keys_go_to_the_view_not_to_a_detail_left_open():
    app = MailqConsole(FixedSource())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MailboxScreen)
        await pilot.press("2")  # from the open detail itself
        await settle(pilot)
        assert isinstance(app.screen, MailboxesScreen)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("1", "2")  # away and back
        await settle(pilot)
        assert isinstance(app.screen, MailboxesScreen)


@sync
async def test_a_screenshot_goes_to_the_var_dir_and_says_where(tmp_path):
    config.use(config.load({"MAILQ_VAR_DIR": str(tmp_path / "var")}, env_file=None))
    try:
        app = MailqConsole(FixedSource())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot)
            shot = app.last_screenshot
            notes = [n.message for n in app._notifications]
    finally:
        config.use(None)
    assert shot is not None and shot.parent == (tmp_path / "var" / "screenshots")
    assert shot.read_text().startswith("<svg") and stat.S_IMODE(shot.stat().st_mode) == 0o600
    assert any(str(shot.resolve()) in m for m in notes), notes


@sync
async def test_at_80x24_the_footer_shows_whole_keys_and_the_table_starts_with_what_matters():
    from textual.widgets._footer import FooterKey

    from console.widgets.keyed_table import KeyedTable

    app = MailqConsole(FixedSource(), view="mailboxes")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        keys = list(app.screen.query(FooterKey))
        assert any(k.action == "help" for k in keys)
        assert all(k.region.right <= 80 and k.region.width >= len(k.key_display) + len(k.description) for k in keys), [
            (k.key_display, k.description, k.region) for k in keys
        ]
        table = app.screen.query_one(KeyedTable)
        headers = [str(c.label) for c in table.columns.values()]
        assert headers[:3] == ["Name", "State", "Last poll"], headers
