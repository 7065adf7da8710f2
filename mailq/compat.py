"""The private attributes of rq and imapclient mailq relies on, each touched here only.

None has a public equivalent in the pinned versions (rq >=2.8,<4, imapclient
>=3,<5). tests/test_compat.py exercises each against the installed library, so
a release that renames one fails there, not in production.
"""

from __future__ import annotations

import imaplib
import random
from typing import Any


def worker_asked_to_stop(worker: Any) -> bool:
    """Whether an rq worker ended because it was asked to (SIGTERM/SIGINT), not because Redis went away.

    A busy worker's stop sets ``_stop_requested``; an idle worker's sets only the
    shutdown date (rq has no public accessor for either).
    """
    return bool(worker._stop_requested) or worker._shutdown_requested_date is not None


def job_exc_text(job: Any) -> str | None:
    """The traceback stored on an rq job hash. Public ``Job.exc_info`` is deprecated (it warns) and
    reads the results stream, which mailq already tried; this is the job's own copy."""
    return job._exc_info or None


def forget_capabilities(client: Any) -> None:
    """Make imapclient ask the server for CAPABILITY again (after login or STARTTLS the list changes;
    imapclient only re-asks on its own before authentication)."""
    client._cached_capabilities = None


def quiet_imaplib(client: Any) -> None:
    """Stop imaplib formatting every response for a log mailq never enables.

    imapclient sets ``_imap.debug = 5`` so its ``imapclient.imaplib`` logger can see
    the protocol; imaplib then builds ``%r`` of every untagged response, whole
    message bodies included, before the (disabled) logger drops it: a quarter of a
    worker's CPU in a first ingest, and four times a literal's size in memory.
    """
    client._imap.debug = 0


class OneTagPrefix:
    """A mixin for imaplib.IMAP4 subclasses: one command-tag prefix per process, not per connection.

    imaplib draws a random prefix per connection and compiles its tagged-response
    expression from it, so ``re``'s cache never hits: ~7 % of an idle poll's worker
    CPU. Tags must only be unique within a connection (RFC 3501 2.2.1). imaplib sets
    ``tagpre`` and reads it back in ``_connect``; this property keeps the process's.
    """

    _tag_prefix = imaplib.Int2AP(random.randint(4096, 65535))

    @property
    def tagpre(self) -> bytes:
        return self._tag_prefix

    @tagpre.setter
    def tagpre(self, _drawn: bytes) -> None:
        pass
