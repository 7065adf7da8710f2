"""Malformed and hostile messages: every one must be stored raw without crashing a poll.

``CORPUS`` is a list of (name, raw bytes). To extend it, append a pair (or a
function's result) at the end; names are unique and say what is hostile.
"""

from __future__ import annotations

import base64

CRLF = b"\r\n"


def _msg(headers: list[bytes], body: bytes) -> bytes:
    return CRLF.join(headers) + CRLF + CRLF + body


def _mixed(boundary: bytes, parts: list[bytes], close: bool = True, extra: list[bytes] | None = None) -> bytes:
    body = b"".join(b"--" + boundary + CRLF + p + CRLF for p in parts)
    if close:
        body += b"--" + boundary + b"--" + CRLF
    headers = [
        b"From: a@example.com",
        b"Subject: multipart",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
    ] + (extra or [])
    return _msg(headers, body)


def _attachment(filename: bytes, data: bytes = b"payload", ctype: bytes = b"application/octet-stream") -> bytes:
    return (
        b"Content-Type: "
        + ctype
        + CRLF
        + b'Content-Disposition: attachment; filename="'
        + filename
        + b'"'
        + CRLF
        + b"Content-Transfer-Encoding: base64"
        + CRLF
        + CRLF
        + base64.encodebytes(data).replace(b"\n", CRLF)
    )


def _nested(depth: int) -> bytes:
    inner = _msg([b"Subject: innermost", b"Content-Type: text/plain"], b"deep")
    for level in range(depth):
        b = f"b{level}".encode()
        inner = b"Content-Type: multipart/mixed; boundary=" + b + CRLF + CRLF + b"--" + b + CRLF + inner + CRLF + b"--" + b + b"--" + CRLF
    return b"From: deep@example.com\r\nSubject: deep nesting\r\nMIME-Version: 1.0\r\n" + inner


def _rfc822_chain(depth: int) -> bytes:
    inner = _msg([b"Subject: level 0", b"Content-Type: text/plain"], b"bottom")
    for level in range(1, depth + 1):
        inner = _msg([f"Subject: level {level}".encode(), b"Content-Type: message/rfc822"], inner)
    return inner


CORPUS: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("only-crlf", b"\r\n\r\n"),
    ("no-headers-just-text", b"hello, there is no header here at all\r\n"),
    ("headers-only-no-body", b"From: a@example.com\r\nSubject: no body"),
    ("bare-lf-line-endings", b"From: a@example.com\nSubject: bare LF\n\nbody\n"),
    ("missing-message-id", _msg([b"From: a@example.com", b"Subject: no id"], b"x")),
    ("duplicate-message-id-a", _msg([b"Message-ID: <same@example.com>", b"Subject: dup A"], b"first body")),
    ("duplicate-message-id-b", _msg([b"Message-ID: <same@example.com>", b"Subject: dup B"], b"second, different body")),
    ("identical-copy-1", _msg([b"Message-ID: <twin@example.com>", b"Subject: twin"], b"identical")),
    ("identical-copy-2", _msg([b"Message-ID: <twin@example.com>", b"Subject: twin"], b"identical")),
    (
        "unknown-charset",
        _msg([b"Subject: =?x-unknown-42?q?caf=E9?=", b"Content-Type: text/plain; charset=x-unknown-42"], b"caf\xe9 unknown charset"),
    ),
    ("non-text-codec-charset", _msg([b"Subject: =?base64?b?aGVsbG8=?=", b"Content-Type: text/plain; charset=zlib"], b"not zlib at all")),
    ("8bit-utf8-headers", _msg(["Subject: Grüße aus Köln ☕".encode(), "From: Jürgen <j@example.com>".encode()], "Körper".encode())),
    ("8bit-latin1-headers", _msg([b"Subject: caf\xe9 cr\xe8me", b"From: Ren\xe9 <r@example.com>"], b"\xe9t\xe9")),
    (
        "nul-and-control-in-headers",
        _msg([b"Subject: nul\x00here \x1b[31mred\x1b[0m \x07bell", b"From: x\x00@e.com"], b"body with \x00 nul"),
    ),
    ("rich-markup-subject", _msg([b"Subject: [bold red]not markup[/] [link=http://x]click[/link]"], b"x")),
    ("broken-base64-body", _msg([b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64"], b"!!!not*base64%%%=")),
    ("broken-quoted-printable", _msg([b"Content-Type: text/plain", b"Content-Transfer-Encoding: quoted-printable"], b"=ZZ broken =\r\n=4")),
    ("multipart-without-boundary", _msg([b"MIME-Version: 1.0", b"Content-Type: multipart/mixed"], b"--x\r\nstuff\r\n")),
    ("multipart-boundary-never-used", _msg([b'Content-Type: multipart/mixed; boundary="nothere"'], b"just text")),
    ("multipart-no-close-delimiter", _mixed(b"open", [b"Content-Type: text/plain\r\n\r\nno end", _attachment(b"a.bin")], close=False)),
    (
        "path-traversal-filename",
        _mixed(b"trav", [_attachment(b"../../../../etc/passwd"), _attachment(b"..\\..\\windows\\system32\\evil.dll")]),
    ),
    ("absolute-filename", _mixed(b"abs", [_attachment(b"/etc/shadow"), _attachment(b"/tmp/../root/.ssh/authorized_keys")])),
    ("nul-and-control-in-filename", _mixed(b"ctl", [_attachment(b"evil\x00.txt.exe"), _attachment(b"bell\x07\x1b[2J.pdf")])),
    (
        "rfc2231-and-encoded-filename",
        _mixed(
            b"enc",
            [
                b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf-8''%2E%2E%2F%2E%2E%2Fr%C3%A9sum%C3%A9.pdf"
                b"\r\n\r\n%PDF",
                b'Content-Type: application/pdf; name="=?utf-8?q?=2E=2E=2Fpasswd?="\r\n\r\n%PDF',
            ],
        ),
    ),
    ("deep-multipart-nesting-200", _nested(200)),
    ("deep-rfc822-nesting-120", _rfc822_chain(120)),
    (
        "nested-rfc822-with-attachment",
        _mixed(
            b"outer",
            [
                b"Content-Type: message/rfc822\r\n\r\n"
                + _mixed(b"inner", [b"Content-Type: text/plain\r\n\r\ninner text", _attachment(b"inner.zip", b"PK\x03\x04zip")])
            ],
        ),
    ),
    ("huge-header-count", _msg([f"X-Header-{i}: value {i}".encode() for i in range(5000)] + [b"Subject: many"], b"x")),
    ("very-long-header-line", _msg([b"Subject: " + b"A" * 200_000, b"References: " + b"<r@x> " * 20_000], b"x")),
    ("garbage-date", _msg([b"Date: the thirty-second of Smarch, year -5", b"Subject: bad date"], b"x")),
    ("date-far-future-and-tz", _msg([b"Date: Fri, 31 Dec 9999 23:59:59 +1400", b"Subject: far"], b"x")),
    ("malformed-address-list", _msg([b'From: "unterminated <a@b', b"To: ,,,;;<<>>@@, group: ;", b"Cc: =?utf-8?q?=FF?= <x>"], b"x")),
    ("malformed-encoded-words", _msg([b"Subject: =?utf-8?b?###?= =?utf-8?q?=ZZ?= =?=?=", b"From: =?bogus?x?y?= <a@b.c>"], b"x")),
    ("binary-junk", bytes(range(256)) * 40),
    ("header-injection-looking-lines", _msg([b"Subject: hi\r\n\tBcc: victim@example.com"], b"\r\nFrom: forged@example.com\r\n")),
]
