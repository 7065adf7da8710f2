"""RFC 3516 binary literals (``~{n}``) in imapclient's response parser, as an upstream fix would do it.

imaplib reads a ``~{428}`` literal from the socket (its literal pattern only
looks at ``{n}`` at the end of the line), but imapclient 4.1's parser treats
the token ``~{428}`` as an atom and returns those 6 bytes as the message body:
Cyrus answers a plain ``BODY.PEEK[]`` of a message with NUL bytes that way, and
mailq stored ``~{428}`` as the message. ``install()`` makes the parser read
``~{n}`` exactly like ``{n}``; it is called once, when ``mailq.imap`` is imported.
"""

from __future__ import annotations

from imapclient import response_parser

_ORIGINAL = response_parser.atom


def _atom(src, token: bytes):
    if token[:2] == b"~{" and token[-1:] == b"}":
        return _ORIGINAL(src, token[1:])  # the literal itself is the same; only its marker differs
    return _ORIGINAL(src, token)


def install() -> None:
    """Idempotent: route imapclient's ``atom`` (looked up as a module global by its parser) through ``_atom``."""
    response_parser.atom = _atom
