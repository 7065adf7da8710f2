"""Hostile and malformed messages for the farm-level tests (extends the sync engine's corpus).

`HOSTILE` is a list of (name, raw bytes). `all_messages()` adds the issue-3
corpus (`tests/corpus.py` or `tests/corpus/`) when it exists. The messages aim
at the blob store (traversal file names in every encoding), the parser
(enormous headers, deep nesting, broken encodings, 8-bit garbage) and the
displays (terminal escape sequences and Rich markup in subjects and names).

`MARKERS` are substrings of every file name the traversal messages try to
create; the farm test scans the disk for them afterwards.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from urllib.parse import quote

MARKERS = ("mailq-pwned", "evil-")
MARKUP_SUBJECT = "[bold red]markup[/bold red] and [link=file:///etc/passwd]click[/link]"
ESC_SUBJECT = "\x1b[2J\x1b[31mRED ALERT\x1b[0m\x07"


def _b64word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?b?" + base64.b64encode(text.encode(charset)).decode() + "?="


def _msg(
    subject: str | bytes,
    body: bytes = b"hello\r\n",
    headers: list[bytes] | None = None,
    ctype: bytes = b"text/plain; charset=utf-8",
    mid: str = "",
) -> bytes:
    subj = subject if isinstance(subject, bytes) else subject.encode("utf-8")
    head = (
        [
            b"From: Sender <sender@example.com>",
            b"To: rcpt@example.com",
            b"Subject: " + subj,
            b"Date: Mon, 01 Jan 2024 10:00:00 +0000",
            f"Message-ID: <{mid or 'h'}@hostile.example>".encode(),
            b"MIME-Version: 1.0",
        ]
        + (headers or [])
        + [b"Content-Type: " + ctype]
    )
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _attach(name: str, disposition_param: bytes, ctype_param: bytes = b"") -> bytes:
    boundary = b"b0undary"
    payload = base64.encodebytes(b"payload of " + name.encode() + b"\n").replace(b"\n", b"\r\n")
    body = (
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--" + boundary + b"\r\nContent-Type: application/octet-stream" + ctype_param + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
        + disposition_param
        + b"\r\n\r\n"
        + payload
        + b"--"
        + boundary
        + b"--\r\n"
    )
    return _msg(f"traversal {name}", body, ctype=b'multipart/mixed; boundary="b0undary"', mid=f"att-{name}")


def _traversal() -> list[tuple[str, bytes]]:
    p = "../../../../../../tmp/mailq-pwned"
    q2231 = quote(p + "-2231.txt", safe="")
    return [
        ("rfc2231", _attach("rfc2231", f"filename*=UTF-8''{q2231}".encode())),
        (
            "rfc2231-continuation",
            _attach(
                "rfc2231-cont",
                f"filename*0*=UTF-8''{quote('../../', safe='')}; filename*1*={quote('../mailq-pwned-cont.sh', safe='')}".encode(),
            ),
        ),
        ("encoded-word-b", _attach("ew-b", f'filename="{_b64word(p + "-ewb.txt")}"'.encode())),
        ("encoded-word-q", _attach("ew-q", b'filename="=?utf-8?q?=2E=2E=2F=2E=2E=2Fmailq-pwned-ewq=2Etxt?="')),
        ("utf8-raw", _attach("utf8", ("filename=\"../../ünïcødé/../../mailq-pwned-ütf8.txt\"").encode())),
        ("percent", _attach("percent", b'filename="..%2F..%2F..%2Fmailq-pwned-percent.txt"')),
        ("backslashes", _attach("backslash", b'filename="..\\\\..\\\\..\\\\mailq-pwned-backslash.dll"')),
        ("absolute", _attach("absolute", b'filename="/tmp/mailq-pwned-absolute.txt"')),
        ("windows-absolute", _attach("windows", b'filename="C:\\\\Windows\\\\mailq-pwned-win.exe"')),
        ("nul-byte", _attach("nul", b'filename="mailq-pwned-nul\x00/../../evil-nul.txt"')),
        ("control-chars", _attach("ctrl", b'filename="\x1b[31mmailq-pwned-ctrl\x07\x08.txt"')),
        ("ctype-name", _attach("ctype", b"inline", b'; name="../../../mailq-pwned-ctype-name"')),
        ("long-name", _attach("long", b'filename="' + b"A" * 10_000 + b'/../mailq-pwned-long"')),
        ("dot-dot", _attach("dots", b'filename=".."')),
        ("newline-in-name", _attach("newline", f'filename="{_b64word("a" + chr(10) + "b/../../mailq-pwned-nl")}"'.encode())),
        ("fullwidth", _attach("fullwidth", ("filename=\"．．／．．／mailq-pwned-fw∕evil-slash\"").encode())),
        ("markup-name", _attach("markup", b'filename="[red]mailq-pwned[/red].pdf"')),
        ("trailing-dots", _attach("trailing", b'filename="mailq-pwned-trail.txt. . ."')),
    ]


def _nested_multipart(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\ndeepest\r\n"
    for i in range(depth):
        b = f"d{i}".encode()
        body = b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" + body + b"\r\n--" + b + b"--\r\n"
    head, _, rest = body.partition(b"\r\n\r\n")
    return _msg("deep multipart", rest, ctype=head.split(b": ", 1)[1], mid="deep-mp")


def _nested_rfc822(depth: int) -> bytes:
    inner = _msg("innermost", mid="inner")
    for i in range(depth):
        inner = _msg(f"wrap {i}", inner, ctype=b"message/rfc822", mid=f"wrap{i}")
    return inner


def _structure() -> list[tuple[str, bytes]]:
    return [
        ("huge-subject", _msg("S" * 300_000, mid="huge-subject")),
        (
            "many-headers",
            _msg("ten thousand headers", headers=[f"Received: from h{i}.example by x".encode() for i in range(10_000)], mid="many-headers"),
        ),
        ("folded-forever", _msg(b"folded" + b"\r\n continued" * 20_000, mid="folded")),
        ("deep-multipart", _nested_multipart(300)),
        ("deep-rfc822", _nested_rfc822(120)),
        (
            "no-final-boundary",
            _msg("no end", b"--x\r\nContent-Type: text/plain\r\n\r\nunterminated\r\n", ctype=b'multipart/mixed; boundary="x"', mid="noend"),
        ),
        ("no-boundary-param", _msg("no boundary", b"--\r\nwhat\r\n--\r\n", ctype=b"multipart/mixed", mid="nobnd")),
        ("empty-boundary", _msg("empty boundary", b"--\r\n\r\nx\r\n----\r\n", ctype=b'multipart/mixed; boundary=""', mid="emptybnd")),
    ]


def _encodings() -> list[tuple[str, bytes]]:
    return [
        (
            "bad-base64",
            _msg("bad base64", b"SGVsbG8@@@!!!===\r\nnot*base64\r\nAA", headers=[b"Content-Transfer-Encoding: base64"], mid="b64"),
        ),
        ("bad-qp", _msg("bad qp", b"=ZZ=\r\nabc=4\r\n=", headers=[b"Content-Transfer-Encoding: quoted-printable"], mid="qp")),
        ("unknown-charset", _msg("unknown charset", "caf\xe9".encode("latin-1"), ctype=b"text/plain; charset=x-unknown-\xfc", mid="cs")),
        ("bogus-encoded-word", _msg("=?x-bogus?Q?abc?= =?utf-8?b?!!!notbase64?= =?utf-8?q?=FF=FE?=", mid="bogusew")),
        ("unknown-cte", _msg("base99", b"zzzz", headers=[b"Content-Transfer-Encoding: base99"], mid="cte")),
        ("bad-date", _msg("bad date", headers=[b"Date: 32 Foo 99999 25:61:61 +9999"], mid="date")),
        ("header-without-colon", b"This is not a header\r\nSubject: after junk\r\n\r\nbody\r\n"),
        ("continuation-first", b" leading continuation\r\nSubject: odd\r\n\r\nbody\r\n"),
        ("latin1-headers", _msg("Caf\xe9 na\xefve \xff".encode("latin-1"), b"\xff\xfe\x00\x01 body", mid="latin1")),
        ("bare-lf", b"Subject: bare LF\nFrom: a@b\n\nline one\nline two\n"),
        ("bare-cr", b"Subject: bare CR\rFrom: a@b\r\rbody\r"),
        ("headers-only", b"Subject: headers only\r\nFrom: x@y\r\n"),
    ]


def _garbage() -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    same = _msg("exact duplicate", b"twice the same bytes\r\n", mid="dup")
    return [
        ("random-bytes", b"X-Garbage: yes\r\n\r\n" + rng.randbytes(4096)),
        ("pure-random", rng.randbytes(2048).replace(b"\r", b"").replace(b"\n", b"")[:1500] + b"\r\n"),
        ("duplicate-1", same),
        ("duplicate-2", same),
        ("same-message-id-other-content", _msg("same id, other bytes", b"different\r\n", mid="dup")),
    ]


def _display() -> list[tuple[str, bytes]]:
    return [
        ("escape-subject", _msg(ESC_SUBJECT, mid="esc")),
        ("escape-in-encoded-word", _msg(_b64word("\x1b]0;pwned title\x07 osc"), mid="osc")),
        ("markup-subject", _msg(MARKUP_SUBJECT, mid="markup")),
        (
            "markup-from",
            _msg("markup from", headers=[], mid="mfrom").replace(
                b"From: Sender <sender@example.com>", b"From: \"[blink]admin[/blink] \x1b[5m\" <admin@example.com>"
            ),
        ),
        ("bidi-subject", _msg("invoice \u202etxt.exe\u202c \u200b zero width", mid="bidi")),
        ("c1-csi-subject", _msg(_b64word("c1 \x9b31m csi \x9d8;;http://x\x9c"), mid="c1")),
        ("osc8-hyperlink", _msg("\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\", mid="osc8")),
    ]


HOSTILE: list[tuple[str, bytes]] = _traversal() + _structure() + _encodings() + _garbage() + _display()


def _issue3_corpus() -> list[tuple[str, bytes]]:
    """The sync engine's corpus, whatever shape it has (a module with a list/dict, or a directory of .eml)."""
    here = Path(__file__).parent
    directory = here / "corpus"
    found: list[tuple[str, bytes]] = []
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            if path.is_file() and path.suffix in (".eml", ".msg", ".txt", ""):
                found.append((f"corpus/{path.relative_to(directory)}", path.read_bytes()))
        return found
    try:
        from tests import corpus  # type: ignore
    except ImportError:
        return found
    for attr in ("CORPUS", "MESSAGES", "HOSTILE", "corpus"):
        value = getattr(corpus, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, dict):
            value = list(value.items())
        if isinstance(value, (list, tuple)) and value:
            for i, item in enumerate(value):
                if isinstance(item, bytes):
                    found.append((f"corpus/{i}", item))
                elif isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[1], bytes):
                    found.append((f"corpus/{item[0]}", item[1]))
                elif hasattr(item, "raw"):
                    found.append((f"corpus/{getattr(item, 'name', i)}", item.raw))
            break
    return found


def all_messages() -> list[tuple[str, bytes]]:
    """This corpus plus the sync engine's (when present)."""
    return HOSTILE + _issue3_corpus()
