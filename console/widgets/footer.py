"""A footer that fits its width: whole keys only, the important ones first, never cut mid-word.

Textual's Footer lays every binding out and cuts the last one off at 80
columns. This one drops keys it has no room for: greyed-out ones first, then
from the end of the screen's list, always keeping Help (which lists them all)
and the palette key.
"""

from __future__ import annotations

from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ALWAYS = ("help",)
NARROW = 100
"""Below this many columns the footer goes compact (less padding around each key)."""


def key_width(key: FooterKey, compact: bool) -> int:
    label = len(key.description) + (1 if key.description else 0)
    return len(key.key_display) + label + (1 if compact else 2)


class FittingFooter(Footer):
    def compose(self):
        widgets = list(super().compose())
        width = self.size.width or self.app.size.width
        compact = width < NARROW
        if self.compact != compact:
            self.set_reactive(Footer.compact, compact)
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        fixed = [w for w in widgets if w not in keys]
        budget = width - sum(key_width(w, compact) for w in fixed if isinstance(w, FooterKey)) - 1
        ranked = sorted(range(len(keys)), key=lambda i: (keys[i].action not in ALWAYS, keys[i].disabled, i))
        kept: set[int] = set()
        for i in ranked:
            need = key_width(keys[i], compact)
            if need <= budget:
                kept.add(i)
                budget -= need
        self.styles.grid_size_columns = len(kept) + len(fixed)
        for i, key in enumerate(keys):
            if i in kept:
                yield key
        yield from fixed

    def on_resize(self, event: Resize) -> None:
        if getattr(self, "_fitted_width", None) != event.size.width:
            self._fitted_width = event.size.width
            self.refresh(recompose=True)
