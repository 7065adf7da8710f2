"""parse.parse: tolerant of hostile input, faithful on normal mail, cheap."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email import policy
from email.parser import BytesParser

import pytest

from mailq import parse
from tests.testbed.mailgen import make_messages

from .corpus import CORPUS


def _texts(p: parse.Parsed) -> list[str]:
    values = [p.subject, p.from_addr, p.to_addrs, p.cc_addrs, p.message_id, p.in_reply_to, p.references, p.preview]
    values += [a.filename for a in p.attachments] + [a.content_type for a in p.attachments] + p.defects
    return [v for v in values if v is not None]


def test_corpus_has_at_least_25_distinct_hostile_messages():
    assert len(CORPUS) >= 25
    assert len({name for name, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("name,raw", CORPUS, ids=[n for n, _ in CORPUS])
def test_hostile_message_parses_without_raising_into_database_safe_text(name, raw):
    parsed = parse.parse(raw)
    for text in _texts(parsed):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates: both databases accept it
    for att in parsed.attachments:
        assert att.sha256 == hashlib.sha256(att.data).hexdigest() and att.size == len(att.data)


def test_headers_are_decoded_and_the_date_is_naive_utc():
    raw = (
        b"From: =?utf-8?b?RXZhIE5vdsOhaw==?= <eva@example.com>\r\nTo: Bob <bob@example.com>\r\n"
        b"Cc: =?iso-8859-1?q?Ren=E9?= <rene@example.com>\r\nSubject: =?utf-8?q?R=C3=A9union_de?=\r\n lundi\r\n"
        b"Date: Mon, 01 Jan 2024 10:00:00 +0200\r\nMessage-ID: <a@b>\r\nIn-Reply-To: <p@b>\r\n"
        b"References: <o@b> <p@b>\r\n\r\nHello   world\r\n"
    )
    p = parse.parse(raw)
    assert p.from_addr == "Eva Novák <eva@example.com>"
    assert p.cc_addrs == "René <rene@example.com>"
    assert p.subject == "Réunion de lundi"
    assert p.date == datetime(2024, 1, 1, 8, 0, 0)
    assert (p.message_id, p.in_reply_to, p.references) == ("<a@b>", "<p@b>", "<o@b> <p@b>")
    assert p.preview == "Hello world"
    assert p.defects == []


def test_attachments_are_found_inside_nested_messages_with_display_names_only():
    p = parse.parse(dict(CORPUS)["nested-rfc822-with-attachment"])
    assert [(a.filename, a.content_type, a.data) for a in p.attachments] == [("inner.zip", "application/octet-stream", b"PK\x03\x04zip")]
    p = parse.parse(dict(CORPUS)["path-traversal-filename"])
    assert [a.filename for a in p.attachments] == ["../../../../etc/passwd", "..\\..\\windows\\system32\\evil.dll"]


def test_undecodable_input_is_reported_as_defects_not_exceptions():
    assert any("nesting deeper" in d for d in parse.parse(dict(CORPUS)["deep-multipart-nesting-200"]).defects)
    assert any("close delimiter" in d for d in parse.parse(dict(CORPUS)["multipart-no-close-delimiter"]).defects)
    assert parse.parse(dict(CORPUS)["garbage-date"]).date is None


def test_unknown_and_8bit_charsets_decode_leniently():
    assert parse.parse(dict(CORPUS)["8bit-latin1-headers"]).subject == "café crème"
    assert parse.parse(dict(CORPUS)["8bit-utf8-headers"]).subject == "Grüße aus Köln ☕"
    assert parse.parse(dict(CORPUS)["unknown-charset"]).preview.startswith("caf")


def test_preview_is_short_and_comes_from_html_when_there_is_no_text_part():
    body = b"<html><body><p>" + b"word " * 50_000 + b"</p></body></html>"
    p = parse.parse(b"Content-Type: text/html; charset=utf-8\r\n\r\n" + body)
    assert p.preview.startswith("word word") and len(p.preview) == parse.PREVIEW_CHARS
    assert "<" not in p.preview


def test_results_match_the_standard_librarys_default_policy_on_realistic_mail():
    std = BytesParser(policy=policy.default)
    for raw in make_messages(60, seed=11):
        ours, ref = parse.parse(raw), std.parsebytes(raw)
        assert ours.subject == str(ref["subject"])
        assert ours.from_addr == str(ref["from"]) and ours.to_addrs == str(ref["to"])
        assert ours.date == ref["date"].datetime.replace(tzinfo=None)
        assert ours.message_id == str(ref["message-id"])
        assert [(a.filename, a.sha256) for a in ours.attachments] == [
            (a.get_filename(), hashlib.sha256(a.get_payload(decode=True)).hexdigest()) for a in ref.iter_attachments()
        ]
