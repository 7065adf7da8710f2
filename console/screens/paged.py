"""Paging for the big lists: only one window of rows is read and drawn per refresh.

At 10,000 mailboxes or 100,000 failed jobs a refresh reads one page
(``offset``/``limit`` on the ops call) plus the total, never the whole list.
"""

from __future__ import annotations

from typing import ClassVar

from ..widgets.keyed_table import KeyedTable


class Paged:
    """Mixin: ``offset``, ``total`` and the next/previous page actions."""

    PAGE: ClassVar[int] = 200
    page_offset: int = 0
    total: int = 0
    _jump_top: bool = False

    def page_label(self) -> str:
        if not self.total:
            return "no rows"
        last = min(self.page_offset + self.PAGE, self.total)
        return f"rows {self.page_offset + 1:,}–{last:,} of {self.total:,}"

    def reset_page(self) -> None:
        self.page_offset, self._jump_top = 0, True

    def settle_page(self, total: int) -> bool:
        """Record the total; True when the page ran past the end (rows were removed) and must be re-read."""
        self.total = total
        if self.page_offset and self.page_offset >= total:
            self.page_offset = max(0, (total - 1) // self.PAGE * self.PAGE)
            return True
        return False

    def after_sync(self, table: KeyedTable) -> None:
        if self._jump_top:
            self._jump_top = False
            if table.row_count:
                table.move_cursor(row=0)
            table.scroll_home(animate=False)

    def check_page_action(self, action: str) -> bool | None:
        if action == "next_page":
            return True if self.page_offset + self.PAGE < self.total else None
        if action == "prev_page":
            return True if self.page_offset > 0 else None
        return True

    def action_next_page(self) -> None:
        if self.page_offset + self.PAGE < self.total:
            self.page_offset += self.PAGE
            self._jump_top = True
            self.app.refresh_now()

    def action_prev_page(self) -> None:
        if self.page_offset > 0:
            self.page_offset = max(0, self.page_offset - self.PAGE)
            self._jump_top = True
            self.app.refresh_now()
