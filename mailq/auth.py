"""Credentials for a mailbox's sign-in: a password, or an OAuth2 access token from its app and grant.

The IMAP session asks :func:`credentials` and, when the server refuses them,
:func:`after_rejection` (one more try at most); it never sees how they were
obtained. A cached OAuth2 token the server refuses (revoked early, clock skew)
is worth one forced refresh; a token fetched a moment ago is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import crypto
from .config import Settings
from .models import Mailbox, OAuthApp
from .oauth import tokens


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str = field(repr=False)  # password or access token: never logged or shown
    mechanism: str = "login"  # login | xoauth2 | oauthbearer
    from_cache: bool = False
    on_rejection: str = ""  # what the operator should check when the server refuses them


def credentials(settings: Settings, mailbox: Mailbox, rejected: Credentials | None = None) -> Credentials:
    """What to sign in with now; ``rejected``: the server refused those, get fresh ones."""
    if mailbox.auth != "oauth2":
        password = crypto.decrypt(settings, mailbox.secret, f"the password of mailbox {mailbox.name!r}")
        return Credentials(
            mailbox.username,
            password,
            "login",
            on_rejection="check the password (polling stops until it changes or the mailbox is resumed)",
        )

    token, cached = tokens.access_token(settings, mailbox, rejected=rejected.secret if rejected else None)
    sasl = OAuthApp.select(OAuthApp.sasl).where(OAuthApp.id == mailbox.oauth_app_id).scalar() or "xoauth2"
    hint = (
        "the server refused a fresh OAuth2 token: check that the username is the account that consented and that the "
        f"app may use IMAP (polling stops until `{tokens.reauthorize_hint(mailbox)}` or `mailq mailbox resume`)"
    )
    return Credentials(mailbox.username, token, sasl, from_cache=cached, on_rejection=hint)


def after_rejection(settings: Settings, mailbox: Mailbox, rejected: Credentials) -> Credentials | None:
    """Credentials worth one more try after the server refused ``rejected``, or None (a password, a fresh token)."""
    if rejected.mechanism == "login" or not rejected.from_cache:
        return None
    retry = credentials(settings, mailbox, rejected=rejected)
    return Credentials(retry.username, retry.secret, retry.mechanism, False, retry.on_rejection)
