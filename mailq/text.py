"""Text that came from mail or servers is data: make it safe to show literally.

Subjects, addresses, file names and server error texts may carry terminal
escape sequences, control characters or Rich markup. ``literal`` neutralises
control characters; callers render the result with ``rich.text.Text`` (never as
markup) so ``[bold]`` stays two brackets and a word.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def literal(value: object, limit: int | None = None, newlines: bool = False) -> str:
    """A printable rendering of ``value``: control characters become U+FFFD-free escapes like ``\\x1b``."""
    if value is None:
        return ""
    text = str(value)
    if not newlines:
        text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    text = _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\\u%04x" % ord(m.group()), text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def one_line(value: object, limit: int = 200) -> str:
    """First line of an error text, safe and bounded (for tables and notifications)."""
    text = "" if value is None else str(value).strip()
    return literal(text.splitlines()[0] if text else "", limit=limit)


def span(seconds: float) -> str:
    """A duration for people: decimals under 10 s (``0.4s``, not ``0s``), then whole units."""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}"
    return f"{int(seconds // 86400)}d"
