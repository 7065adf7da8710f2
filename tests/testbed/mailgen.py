"""Deterministic generator of realistic RFC 5322 messages (CRLF line endings).

Same seed, same bytes: benchmarks and tests can compare what the server
returns with what was injected. Bodies are sliced from a prebuilt corpus and
attachments are seeded random blobs, so thousands of messages take well under
a second or two.
"""

from __future__ import annotations

import base64
import math
import random
from datetime import UTC, datetime, timedelta

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""Largest message make_messages() produces unless told otherwise."""

SIZE_CLASSES = {"small": 0.94, "medium": 0.055, "large": 0.005}
"""Share of each size class: small 2-50 KB, medium 100 KB-1 MB, large 1 MB-max."""

_WORDS = [
    "invoice",
    "meeting",
    "report",
    "quarterly",
    "budget",
    "review",
    "please",
    "find",
    "attached",
    "the",
    "latest",
    "draft",
    "schedule",
    "update",
    "project",
    "team",
    "customer",
    "order",
    "shipment",
    "delivery",
    "thanks",
    "regards",
    "we",
    "need",
    "your",
    "approval",
    "before",
    "friday",
    "next",
    "week",
    "status",
    "numbers",
    "revenue",
    "forecast",
    "contract",
    "renewal",
    "support",
    "ticket",
    "issue",
    "resolved",
    "follow",
    "up",
    "call",
    "agenda",
    "minutes",
    "summary",
    "action",
    "items",
    "deadline",
    "office",
    "travel",
    "expenses",
    "receipt",
    "payment",
    "overdue",
]
_NAMES = [
    "Alice Martin",
    "Bob Chen",
    "Chloé Dubois",
    "David Okafor",
    "Eva Novák",
    "Frank Müller",
    "Grace Kim",
    "Hiro Tanaka",
    "Ingrid Olsen",
    "José García",
    "Karin Svensson",
    "Liam Byrne",
]
_DOMAINS = ["example.com", "example.org", "acme.test", "corp.example", "mail.example.net"]
_SUBJECTS = [
    "Quarterly report",
    "Meeting notes",
    "Invoice {n}",
    "Re: project status",
    "Fwd: contract draft",
    "Order {n} shipped",
    "Agenda for Monday",
    "Expense receipt {n}",
]
_UNICODE_SUBJECTS = ["Réunion de lundi", "Angebot für Ihr Büro {n}", "Счёт №{n}", "会議の議事録", "Café ☕ on Friday", "Ñandú report {n}"]
_ATTACHMENTS = [
    ("application/pdf", "pdf", b"%PDF-1.4\n"),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0"),
    ("application/octet-stream", "bin", b""),
    ("application/zip", "zip", b"PK\x03\x04"),
]
_EPOCH = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def _build_corpus() -> list[bytes]:
    """~64 KB of wrapped text lines, built once from a fixed seed."""
    rng = random.Random(1234)
    lines = []
    for _ in range(1100):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
        lines.append(" ".join(words).capitalize().encode() + b".")
    return lines


_CORPUS = _build_corpus()


def _text(rng: random.Random, size: int) -> bytes:
    """About `size` bytes of CRLF text lines, sliced from the corpus at a random place."""
    out, total, i = [], 0, rng.randrange(len(_CORPUS))
    while total < size:
        line = _CORPUS[i % len(_CORPUS)]
        out.append(line)
        total += len(line) + 2
        i += 1
    return b"\r\n".join(out) + b"\r\n"


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _address(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    local = name.split()[0].lower().encode("ascii", "ignore").decode()
    shown = name if name.isascii() else _encoded_word(name)
    return f'{shown} <{local}@{rng.choice(_DOMAINS)}>'


def _target_size(rng: random.Random, size_class: str, max_bytes: int) -> int:
    low, high = {"small": (2_000, 50_000), "medium": (100_000, 1_000_000), "large": (1_000_000, max_bytes)}[size_class]
    high = max(min(high, max_bytes), 1_000)
    low = min(low, high)
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _headers(rng: random.Random, index: int, token: str) -> list[str]:
    date = _EPOCH + timedelta(minutes=index * 7 + rng.randrange(7))
    subject = rng.choice(_UNICODE_SUBJECTS if rng.random() < 0.2 else _SUBJECTS).format(n=1000 + index)
    subject = subject if subject.isascii() else _encoded_word(subject)
    return [
        f"From: {_address(rng)}",
        f"To: {_address(rng)}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Subject: {subject}",
        f"Message-ID: <{token}.{index}@mailgen.example>",
        "MIME-Version: 1.0",
    ]


def _part(content_type: str, body: bytes, extra: str = "") -> bytes:
    return f"Content-Type: {content_type}\r\n{extra}\r\n".encode() + body


def _attachment(rng: random.Random, size: int) -> bytes:
    ctype, ext, magic = rng.choice(_ATTACHMENTS)
    data = (magic + rng.randbytes(max(size - len(magic), 0)))[: max(size, len(magic))]
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    name = f"document-{rng.randrange(10_000):04d}.{ext}"
    return _part(
        f'{ctype}; name="{name}"', encoded, f'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="{name}"\r\n'
    )


def _multipart(rng: random.Random, subtype: str, parts: list[bytes]) -> tuple[str, bytes]:
    boundary = f"=_mailgen_{rng.getrandbits(64):016x}"
    body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
    return f'multipart/{subtype}; boundary="{boundary}"', body + f"--{boundary}--\r\n".encode()


def make_message(rng: random.Random, index: int, size_class: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """One message; the kind (plain, html+text, with attachments) and size come from rng.

    `size_class` is "small", "medium" or "large" (None: drawn with SIZE_CLASSES
    weights). The Message-ID is unique per (rng state, index).
    """
    if size_class is None:
        size_class = rng.choices(list(SIZE_CLASSES), weights=list(SIZE_CLASSES.values()))[0]
    target = _target_size(rng, size_class, max_bytes)
    headers = _headers(rng, index, f"{rng.getrandbits(48):012x}")
    kind = rng.choices(["plain", "html", "attach"], weights=[5, 3, 2])[0] if size_class == "small" else "attach"
    text_size = min(target, rng.randint(600, 6_000)) if kind == "attach" else target
    text = _text(rng, text_size)
    plain = _part("text/plain; charset=utf-8", text, "Content-Transfer-Encoding: 8bit\r\n")
    if kind == "plain":
        ctype, body = "text/plain; charset=utf-8", text
        headers.append("Content-Transfer-Encoding: 8bit")
    elif kind == "html":
        html = b"<html><body><p>" + text.replace(b"\r\n", b"</p>\r\n<p>") + b"</p></body></html>\r\n"
        ctype, body = _multipart(rng, "alternative", [plain, _part("text/html; charset=utf-8", html)])
    else:
        remaining = max(target - len(text) - 1_000, 1_000) * 3 // 4  # base64 grows by 4/3
        count = 1 if remaining < 200_000 else rng.randint(1, 3)
        sizes = [remaining // count] * count
        parts = [plain] + [_attachment(rng, s) for s in sizes]
        ctype, body = _multipart(rng, "mixed", parts)
    head = "\r\n".join(headers + [f"Content-Type: {ctype}"]).encode()
    return head + b"\r\n\r\n" + body


def make_messages(n: int, seed: int = 0, max_bytes: int = DEFAULT_MAX_BYTES) -> list[bytes]:
    """n messages with a realistic size mix (mostly 2-50 KB), the same for the same seed."""
    rng = random.Random(seed)
    return [make_message(rng, i, max_bytes=max_bytes) for i in range(n)]
