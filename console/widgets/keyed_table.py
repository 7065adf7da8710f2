"""A DataTable refreshed by diffing rows keyed by id, so the cursor and scroll stay put.

``clear()`` and re-adding would reset the cursor and the scroll position every
2 s; instead ``sync`` removes rows that went away, updates only changed cells,
adds new rows and restores the order. The cursor stays on the same row id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

Row = tuple[str, Sequence[object]]


class KeyedTable(DataTable):
    """DataTable with ``sync(rows)``; columns are (key, label) pairs, a label starting with '>' is right-aligned."""

    def __init__(self, columns: Sequence[tuple[str, str]], focusable: bool = True, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row" if focusable else "none")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.can_focus = focusable
        self._column_spec = list(columns)

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            right = label.startswith(">")
            self.add_column(Text(label.lstrip(">"), justify="right" if right else "left"), key=key)

    @property
    def current_key(self) -> str | None:
        """Id of the row under the cursor, or None for an empty table."""
        if not self.row_count or not self.is_valid_row_index(self.cursor_row):
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def sync(self, rows: Iterable[Row]) -> None:
        """Make the table show exactly ``rows`` (in that order), touching only what changed."""
        wanted = [(str(key), list(cells)) for key, cells in rows]
        column_keys = [key for key, _ in self._column_spec]
        cursor_key = self.current_key
        cursor_index = self.cursor_row
        new_keys = {key for key, _ in wanted}
        with self.app.batch_update():
            for row_key in [k for k in self.rows if k.value not in new_keys]:
                self.remove_row(row_key)
            for key, cells in wanted:
                if RowKey(key) in self.rows:
                    old = self.get_row(key)
                    for column, before, after in zip(column_keys, old, cells):
                        if before != after:
                            self.update_cell(key, column, after, update_width=self._widens(column, after))
                else:
                    self.add_row(*cells, key=key)
            self._reorder([key for key, _ in wanted])
            if cursor_key is not None and cursor_key in new_keys:
                index = self.get_row_index(cursor_key)
                if index != self.cursor_row:
                    self.move_cursor(row=index)
            elif self.row_count:
                self.move_cursor(row=min(cursor_index, self.row_count - 1))

    def _widens(self, column: str, value: object) -> bool:
        """Whether the column must grow for ``value``.

        ``update_width=True`` on a cell that got narrower makes DataTable re-measure
        the whole column: at 200 rows of changing 'ago' texts that is 40,000
        measurements per refresh. Columns only grow, never shrink, which is calm too.
        """
        width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
        return width > self.columns[ColumnKey(column)].content_width

    def _reorder(self, keys: list[str]) -> None:
        """Put rows in ``keys`` order (new rows were appended at the bottom).

        Same three lines as ``DataTable.sort``, which can only sort by cell values;
        safe because Textual is pinned exactly.
        """
        if [self._row_locations.get_key(i).value for i in range(len(keys))] == keys:
            return
        self._row_locations = TwoWayDict({RowKey(key): index for index, key in enumerate(keys)})
        self._update_count += 1
        self.refresh()
