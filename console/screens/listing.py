"""What the list views share (failed jobs, messages, mailboxes, schedule): one page of rows in a
keyed table, under an info line and a filter bar; a highlighted row updates the footer, Enter opens it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import KeyedTable
from .base import LiveScreen
from .paged import Paged

if TYPE_CHECKING:
    from ..source import Source


class ListScreen(Paged, LiveScreen):
    """A paged list. Subclasses read a page (``read``) and draw a row (``cells``), and name the table
    (``COLUMNS``, ``TABLE_ID``), the info line (``INFO_ID``, ``info()``) and the filter bar
    (``FILTER`` = (placeholder, id)) above it, if they have them."""

    COLUMNS: ClassVar[list[tuple[str, str]]] = []
    TABLE_ID: ClassVar[str] = ""
    INFO_ID: ClassVar[str | None] = None
    FILTER: ClassVar[tuple[str, str] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield from self.compose_head()
        yield KeyedTable(self.COLUMNS, id=self.TABLE_ID)
        yield from self.compose_bottom()

    def compose_head(self) -> ComposeResult:
        """What stands between the tabs and the table."""
        if self.INFO_ID:
            yield Static(id=self.INFO_ID, classes="info")
        if self.FILTER:
            placeholder, filter_id = self.FILTER
            yield FilterBar(placeholder, id=filter_id)

    def on_mount(self) -> None:
        self.query_one(KeyedTable).focus()
        self.show_info()

    def read(self, source: Source) -> tuple[list, int]:
        """One page of rows (``page_offset``, ``PAGE``, the filter) and the total (worker thread)."""
        raise NotImplementedError

    def row_key(self, row: Any) -> str:
        return str(row.id)

    def cells(self, row: Any, now: datetime) -> list:
        raise NotImplementedError

    def fetch(self, source: Source) -> tuple[list, int, datetime]:
        rows, total = self.read(source)
        return rows, total, source.now()

    def show(self, data: tuple[list, int, datetime]) -> None:
        self.show_rows(*data)

    def show_rows(self, rows: list, total: int, now: datetime) -> KeyedTable:
        """Put one fetched page in the table; re-read when the page ran past the end (rows were removed)."""
        if self.settle_page(total):
            self.app.refresh_now()
        self.rows = {self.row_key(row): row for row in rows}
        table = self.query_one(KeyedTable)
        table.sync((key, self.cells(row, now)) for key, row in self.rows.items())
        self.after_sync(table)
        self.show_info()
        return table

    def info(self) -> Text:
        """The info line's text (subclasses with an ``INFO_ID``)."""
        raise NotImplementedError

    def show_info(self) -> None:
        if self.INFO_ID:
            self.query_one(f"#{self.INFO_ID}", Static).update(self.info())

    def current_row(self) -> Any | None:
        """The row under the cursor, as ``fetch`` read it."""
        return self.rows.get(self.query_one(KeyedTable).current_key or "")

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def filter_changed(self) -> None:
        """A new filter: back to the first page, read at once."""
        self.reset_page()
        self.show_info()
        self.app.refresh_now()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_bindings()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Open the row under the cursor (a list without a detail view opens nothing)."""
