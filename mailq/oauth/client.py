"""Token requests to an authorization server, through authlib (no OAuth protocol code here).

authlib (``OAuth2Session``, ``AssertionSession``) speaks the grants: refresh
token, client credentials, authorization code with PKCE, the device-code poll
(RFC 8628) and the JWT bearer grant of Google service accounts (RFC 7523,
signed with joserfc). This module only picks the grant, bounds every call by an
absolute deadline, and turns library errors into mailq errors:

- ``invalid_grant`` (revoked, expired, consent withdrawn) → ``GrantRevokedError``;
- the app refused (wrong secret, unauthorized client, bad scope) → ``OAuthClientError``;
- anything else (refused, timeout, 5xx, garbage) → ``TokenEndpointError`` (transient).

No token or secret is ever part of an error text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import AssertionSession, OAuth2Session, OAuthError

from ..config import Settings
from ..errors import GrantRevokedError, OAuthClientError, TokenEndpointError, UsageError
from ..models import OAuthApp, utcnow
from . import apps

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_CLIENT_ERRORS = ("invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type", "invalid_request")
DEFAULT_LIFETIME = 3600
"""Seconds an access token is taken to live when the server sends no ``expires_in``."""


@dataclass
class Token:
    access_token: str
    expires_at: datetime  # naive UTC
    refresh_token: str | None = None  # a new one when the server rotates


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    interval: float
    expires_in: float
    message: str | None = None


def _timeout(settings: Settings, deadline: float | None) -> tuple[float, float]:
    """(connect, read) seconds for one HTTP call, never past ``deadline`` (time.monotonic())."""
    connect, read = settings.connect_timeout, settings.read_timeout
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TokenEndpointError("no time left for the token endpoint within this poll's deadline: transient, will retry")
        connect, read = min(connect, left), min(read, left)
    return connect, read


def _token(data: dict[str, Any], app: OAuthApp) -> Token:
    access = data.get("access_token")
    if not access or not isinstance(access, str):
        raise TokenEndpointError(f"the token endpoint of OAuth app {app.name!r} answered without an access token: transient, will retry")
    try:
        lifetime = int(data.get("expires_in") or DEFAULT_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return Token(access, utcnow() + timedelta(seconds=max(lifetime, 1)), data.get("refresh_token") or None)


def call(app: OAuthApp, what: str, request: Callable[[], dict[str, Any]], reauthorize: str | None = None) -> Token:
    """Run one authlib token request and map its failure; ``reauthorize`` is said on ``invalid_grant``."""
    return _token(mapped(app, what, request, reauthorize), app)


def mapped(app: OAuthApp, what: str, request: Callable[[], dict[str, Any]], reauthorize: str | None = None) -> dict[str, Any]:
    """``request()``'s JSON, with library and HTTP failures turned into mailq errors (see the module docstring)."""
    where = f"the authorization server of OAuth app {app.name!r} ({app.token_url})"
    try:
        return request()
    except AuthlibBaseError as exc:
        code = getattr(exc, "error", None) or type(exc).__name__
        detail = f"{code}: {exc.description}" if getattr(exc, "description", None) else code
        detail = detail[:300]
        if code == "invalid_grant":
            hint = f"re-authorize: {reauthorize}" if reauthorize else "the grant is no longer valid"
            raise GrantRevokedError(f"{where} refused {what} ({detail}): {hint}") from None
        if code in _CLIENT_ERRORS:
            raise OAuthClientError(
                f"{where} refused the app during {what} ({detail}): check the client id/secret, scopes and the app's "
                f"permissions; fix with `mailq oauth app add {app.name} ...`"
            ) from None
        raise TokenEndpointError(f"{where} failed {what} ({detail}): transient, will retry") from None
    except requests.Timeout:
        raise TokenEndpointError(f"{where} did not answer in time during {what}: transient, will retry") from None
    except requests.RequestException as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        reason = f"HTTP {status}" if status else type(exc).__name__
        raise TokenEndpointError(f"{where} is unreachable or failing during {what} ({reason}): transient, will retry") from None
    except ValueError as exc:  # not a JSON object
        raise TokenEndpointError(f"{where} answered garbage during {what} ({str(exc)[:200]}): transient, will retry") from None


def session(settings: Settings, app: OAuthApp, **kwargs: Any) -> OAuth2Session:
    """An authlib client of ``app``: the secret goes in the POST body (both providers take it), none for public clients."""
    secret = apps.client_secret(settings, app)
    return OAuth2Session(app.client_id, secret, token_endpoint_auth_method="client_secret_post" if secret else "none", **kwargs)


def refresh(
    settings: Settings, app: OAuthApp, refresh_token: str, *, deadline: float | None = None, reauthorize: str | None = None
) -> Token:
    client = session(settings, app, scope=" ".join(app.scopes))
    timeout = _timeout(settings, deadline)
    return call(app, "the refresh", lambda: client.refresh_token(app.token_url, refresh_token=refresh_token, timeout=timeout), reauthorize)


def client_credentials(settings: Settings, app: OAuthApp, *, deadline: float | None = None) -> Token:
    if not app.client_secret:
        raise UsageError(
            f"OAuth app {app.name!r} has no client secret: app-only access needs one (`mailq oauth app add ... --client-secret-stdin`)"
        )
    client = session(settings, app, scope=" ".join(apps.app_only_scopes(app)))
    timeout = _timeout(settings, deadline)
    return call(
        app, "the client-credentials grant", lambda: client.fetch_token(app.token_url, grant_type="client_credentials", timeout=timeout)
    )


def parse_service_account(text: str) -> dict[str, str]:
    """The fields of a Google service-account key file that the JWT bearer grant needs."""
    try:
        data = json.loads(text)
    except ValueError:
        raise UsageError("the service-account file is not JSON: download the key of the service account (Keys → Add key → JSON)") from None
    if not isinstance(data, dict) or not data.get("client_email") or not data.get("private_key"):
        raise UsageError("the service-account file has no client_email/private_key: it must be a service account's JSON key")
    return data


def service_account(settings: Settings, app: OAuthApp, key_text: str, subject: str, *, deadline: float | None = None) -> Token:
    """JWT bearer grant: the service account, with domain-wide delegation, acts as ``subject``."""
    from joserfc.jwk import RSAKey

    key = parse_service_account(key_text)
    try:
        private_key = RSAKey.import_key(key["private_key"])
    except (ValueError, TypeError):
        raise UsageError("the service-account file's private_key is not an RSA key: download a new JSON key") from None
    header = {"alg": "RS256", **({"kid": key["private_key_id"]} if key.get("private_key_id") else {})}
    client = AssertionSession(
        app.token_url,
        issuer=key["client_email"],
        subject=subject,
        audience=app.token_url,
        claims={"scope": " ".join(app.scopes)},
        key=private_key,
        header=header,
        default_timeout=_timeout(settings, deadline),
    )
    return call(app, "the service-account (JWT bearer) grant", client.refresh_token)


def start_device(settings: Settings, app: OAuthApp) -> DeviceCode:
    """RFC 8628 device authorization request: one form POST (authlib has no helper for it)."""
    if not app.device_url:
        raise UsageError(f"OAuth app {app.name!r} has no device-code URL: add it with --device-url, or use the browser flow")
    client = session(settings, app)

    def request() -> dict[str, Any]:
        form = {"client_id": app.client_id, "scope": " ".join(app.scopes)}
        resp = client.post(app.device_url, data=form, timeout=_timeout(settings, None), withhold_token=True)
        if resp.status_code >= 500:
            resp.raise_for_status()
        data = resp.json()
        if not isinstance(data, dict) or "error" in data:
            body = data if isinstance(data, dict) else {}
            raise OAuthError(error=body.get("error", f"HTTP {resp.status_code}"), description=body.get("error_description"))
        return data

    data = mapped(app, "the device-code request", request)
    try:
        return DeviceCode(
            data["device_code"],
            data["user_code"],
            data.get("verification_uri") or data.get("verification_url", ""),
            float(data.get("interval", 5)),
            float(data.get("expires_in", 900)),
            data.get("message"),
        )
    except (KeyError, TypeError, ValueError):
        raise TokenEndpointError(f"the device-code endpoint of OAuth app {app.name!r} answered without a device code") from None


def poll_device(settings: Settings, app: OAuthApp, device: DeviceCode) -> Token | None:
    """One poll of the token endpoint: the token once the user consented, None while pending."""
    client = session(settings, app)
    timeout = _timeout(settings, None)
    try:
        return call(
            app,
            "the device-code grant",
            lambda: client.fetch_token(app.token_url, grant_type=DEVICE_GRANT, device_code=device.device_code, timeout=timeout),
        )
    except OAuthClientError:
        raise
    except (GrantRevokedError, TokenEndpointError) as exc:
        if "authorization_pending" in str(exc) or "slow_down" in str(exc):
            return None
        raise


def exchange_code(
    settings: Settings, app: OAuthApp, client: OAuth2Session, authorization_response: str, state: str, code_verifier: str
) -> Token:
    """Authorization-code grant with PKCE; authlib checks the redirect's ``state`` against ours."""
    timeout = _timeout(settings, None)
    return call(
        app,
        "the authorization-code exchange",
        lambda: client.fetch_token(
            app.token_url, authorization_response=authorization_response, state=state, code_verifier=code_verifier, timeout=timeout
        ),
    )
