"""OAuth app records (one per registration with a provider): validate, save, list, remove.

The client secret arrives as plain text only here and leaves encrypted; it is
never part of ``to_dict`` (the ``--json`` shape) or an error text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .. import crypto
from ..config import Settings
from ..db import database, errors_as_mailq
from ..errors import InvalidApp, NotFoundError, UsageError
from ..models import Mailbox, OAuthApp, utcnow
from . import providers

SASL_MECHANISMS = ("xoauth2", "oauthbearer")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class AppSpec:
    name: str
    provider: str
    client_id: str
    client_secret: str | None
    tenant: str | None
    token_url: str
    auth_url: str | None
    device_url: str | None
    scopes: list[str]
    sasl: str


def _url(flag: str, value: str | None) -> str | None:
    """HTTPS only, except loopback (a local authorization server)."""
    if not value:
        return None
    parsed = urlparse(value)
    loopback = parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parsed.scheme == "https" or loopback) or not parsed.hostname:
        raise InvalidApp(f"{flag}: {value!r} is not an https:// URL (plain http only on 127.0.0.1)")
    return value


def validate(
    *,
    name: str,
    provider: str,
    client_id: str,
    client_secret: str | None = None,
    tenant: str | None = None,
    token_url: str | None = None,
    auth_url: str | None = None,
    device_url: str | None = None,
    scopes: list[str] | None = None,
    sasl: str | None = None,
) -> AppSpec:
    """Fill a provider's endpoints and scopes; flags given explicitly win (``generic`` needs them)."""
    if not _NAME_RE.match(name or ""):
        raise InvalidApp("name: use 1-100 letters, digits, '.', '_' or '-'")
    if provider not in providers.PROVIDERS:
        raise InvalidApp(f"--provider: {provider!r} is not one of {', '.join(providers.PROVIDERS)}")
    if not (client_id or "").strip():
        raise InvalidApp("--client-id: must not be empty")
    p = providers.get(provider)
    tenant = (tenant or p.default_tenant or "").strip() or None
    if tenant and not re.match(r"^[A-Za-z0-9.-]{1,100}$", tenant):
        raise InvalidApp(f"--tenant: {tenant!r} is not common, organizations, consumers, a tenant id or a domain")

    def fill(template: str) -> str | None:
        return template.replace("{tenant}", tenant or "common") if template else None

    token_url = _url("--token-url", token_url or fill(p.token_url))
    if not token_url:
        raise InvalidApp(f"--token-url: provider {provider} needs the token endpoint's URL")
    auth_url = _url("--auth-url", auth_url or fill(p.auth_url))
    device_url = _url("--device-url", device_url or fill(p.device_url))
    scopes = [s for s in (scopes or p.scopes) if s.strip()]
    if not scopes:
        raise InvalidApp(f"--scope: provider {provider} needs at least one scope")
    sasl = (sasl or "xoauth2").lower()
    if sasl not in SASL_MECHANISMS:
        raise InvalidApp(f"--sasl: {sasl!r} is not one of {', '.join(SASL_MECHANISMS)}")
    return AppSpec(name, provider, client_id.strip(), client_secret or None, tenant, token_url, auth_url, device_url, scopes, sasl)


def save(settings: Settings, spec: AppSpec) -> tuple[OAuthApp, bool]:
    """Insert or update by name; an update without a secret keeps the stored one.

    A new client secret gives the app's mailboxes parked on the old one (the server
    refused the app) a new attempt, as a changed password does for its mailbox.
    """
    with errors_as_mailq(), database.atomic():
        app = OAuthApp.get_or_none(OAuthApp.name == spec.name)
        created = app is None
        app = app or OAuthApp(name=spec.name, created_at=utcnow())
        app.provider, app.client_id, app.tenant = spec.provider, spec.client_id, spec.tenant
        app.token_url, app.auth_url, app.device_url = spec.token_url, spec.auth_url, spec.device_url
        app.scopes, app.sasl = spec.scopes, spec.sasl
        renewed = spec.client_secret is not None and not created
        if spec.client_secret is not None:
            app.client_secret = crypto.encrypt(settings, spec.client_secret)
        app.save()
        if renewed:
            Mailbox.update(state="ok", consecutive_failures=0, next_attempt_at=None, updated_at=utcnow()).where(
                (Mailbox.oauth_app == app.id) & (Mailbox.state == "auth_error") & (Mailbox.last_error_class == "oauth_client")
            ).execute()
    return app, created


def get(name: str) -> OAuthApp:
    with errors_as_mailq():
        app = OAuthApp.get_or_none(OAuthApp.name == name)
    if app is None:
        raise NotFoundError(f"no OAuth app named {name!r}: see `mailq oauth app list`, add one with `mailq oauth app add`")
    return app


def list_apps() -> list[OAuthApp]:
    with errors_as_mailq():
        return list(OAuthApp.select().order_by(OAuthApp.name))


def remove(name: str) -> None:
    """Refuse while mailboxes sign in through the app (they would lose their sign-in)."""
    app = get(name)
    with errors_as_mailq(), database.atomic():
        users = [m.name for m in Mailbox.select(Mailbox.name).where(Mailbox.oauth_app == app.id).limit(6)]
        if users:
            listed = ", ".join(users[:5]) + (" ..." if len(users) > 5 else "")
            raise UsageError(f"OAuth app {name!r} is used by mailbox(es) {listed}: remove them or move them to another app first")
        app.delete_instance()


def client_secret(settings: Settings, app: OAuthApp) -> str | None:
    if not app.client_secret:
        return None
    return crypto.decrypt(settings, app.client_secret, f"the client secret of OAuth app {app.name!r}")


def app_only_scopes(app: OAuthApp) -> list[str]:
    """Scopes of a client-credentials token: Microsoft's Exchange ``.default``, else the app's scopes."""
    p = providers.get(app.provider)
    return list(p.app_only_scopes) if p.app_only_scopes and app.provider != "generic" else list(app.scopes)


def to_dict(app: OAuthApp) -> dict[str, Any]:
    """The stable JSON shape: whether there is a client secret, never the secret."""
    return {
        "name": app.name,
        "provider": app.provider,
        "client_id": app.client_id,
        "has_client_secret": bool(app.client_secret),
        "tenant": app.tenant,
        "token_url": app.token_url,
        "auth_url": app.auth_url,
        "device_url": app.device_url,
        "scopes": list(app.scopes),
        "sasl": app.sasl,
    }
