"""A local OAuth 2.0 authorization server, written for the tests: it stands in for Google and Microsoft.

Google's and Microsoft's servers cannot run here, so this one plays their part
over real HTTP on 127.0.0.1: a token endpoint (refresh_token with rotation,
client_credentials, the device_code grant, the JWT bearer grant of service
accounts, authorization_code with PKCE), a device-authorization endpoint, an
``/authorize`` page that consents at once for the user "signed in to the
browser", and RFC 7662 introspection, which the test Dovecot's ``oauth2`` passdb
calls for every XOAUTH2/OAUTHBEARER sign-in. Tests can make tokens short-lived,
revoke grants, make the token endpoint slow or failing, and count its calls.

Like Microsoft, a reused (already rotated) refresh token revokes its whole
family. App-only (client_credentials) tokens are good for the one mailbox the
app was granted (Exchange checks ``Add-MailboxPermission`` the same way).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from joserfc import jwt
from joserfc.errors import JoseError

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Client:
    client_id: str
    secret: str | None = None
    app_mailbox: str | None = None  # client_credentials tokens are valid for this mailbox only


@dataclass
class Grant:
    """One consent (a token family): a user's refresh tokens descend from it."""

    client_id: str
    username: str
    current: str  # the refresh token that is valid now
    used: set[str] = field(default_factory=set)
    revoked: bool = False


class AuthServer:
    """Start with ``with AuthServer() as server:``; ``server.url`` is its base URL."""

    def __init__(self, access_ttl: float = 3600, rotate: bool = True):
        self.access_ttl = access_ttl
        self.rotate = rotate
        self.mode = "ok"  # ok | slow | down (503 temporarily_unavailable) | error (500 text)
        self.slow_seconds = 5.0
        self.consent_user: str | None = None  # who is "signed in to the browser" for /authorize
        self.calls: collections.Counter[str] = collections.Counter()  # token-endpoint calls per grant type
        self.introspections = 0
        self.refreshes: collections.Counter[str] = collections.Counter()  # successful refresh-token grants per user
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._service_accounts: dict[str, object] = {}  # client_email -> public key
        self._grants: dict[str, Grant] = {}  # refresh token (current or used) -> grant
        self._access: dict[str, tuple[str, float]] = {}  # access token -> (username, expires at)
        self._codes: dict[str, dict] = {}
        self._all_access: set[str] = set()
        self._devices: dict[str, dict] = {}  # device_code -> {user_code, username, client_id, scope}
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    token_url = property(lambda self: self.url + "/token")
    auth_url = property(lambda self: self.url + "/authorize")
    device_url = property(lambda self: self.url + "/device")
    introspect_url = property(lambda self: self.url + "/introspect")

    def start(self) -> AuthServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="auth-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the tests set up -------------------------------------------

    def add_client(self, client_id: str, secret: str | None = None, app_mailbox: str | None = None) -> Client:
        client = Client(client_id, secret, app_mailbox)
        self._clients[client_id] = client
        return client

    def add_service_account(self, client_email: str, public_key_pem: bytes) -> None:
        from joserfc.jwk import RSAKey

        self._service_accounts[client_email] = RSAKey.import_key(public_key_pem)

    def consent(self, client_id: str, username: str) -> str:
        """A refresh token as if ``username`` had consented to ``client_id`` (what `authorize` gets)."""
        with self._lock:
            return self._new_grant(client_id, username)

    def revoke_user(self, username: str) -> None:
        """Consent withdrawn: every refresh and access token of the user dies."""
        with self._lock:
            for grant in self._grants.values():
                if grant.username == username:
                    grant.revoked = True
            self._access = {t: v for t, v in self._access.items() if v[0] != username}

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def refresh_token_of(self, username: str) -> str | None:
        """The currently valid refresh token of the user's newest live grant."""
        with self._lock:
            live = [g for g in self._grants.values() if g.username == username and not g.revoked]
            return live[-1].current if live else None

    def approve_device(self, user_code: str, username: str) -> None:
        """The user typed the code on the verification page and consented."""
        with self._lock:
            for device in self._devices.values():
                if device["user_code"] == user_code:
                    device["username"] = username
                    return
        raise KeyError(f"no device code with user code {user_code!r}")

    def issued_access_tokens(self) -> list[str]:
        with self._lock:
            return list(self._access)

    def issued_secrets(self) -> list[str]:
        """Every token this server ever handed out (for the secrets scan)."""
        with self._lock:
            return sorted(set(self._grants) | self._all_access)

    # -- inside ----------------------------------------------------------

    def _new_grant(self, client_id: str, username: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        self._grants[token] = Grant(client_id, username, token)
        return token

    def _issue(self, username: str, grant: Grant | None = None, scope: str = "") -> dict:
        access = "at-" + secrets.token_urlsafe(24)
        self._access[access] = (username, time.time() + self.access_ttl)
        self._all_access.add(access)
        body = {"access_token": access, "token_type": "Bearer", "expires_in": int(self.access_ttl), "scope": scope}
        if grant is not None:
            if self.rotate:
                grant.used.add(grant.current)
                grant.current = "rt-" + secrets.token_urlsafe(24)
                self._grants[grant.current] = grant
            body["refresh_token"] = grant.current
        return body

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, dict | str]:
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.calls[grant_type] += 1
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        elif self.mode == "down":
            return 503, {"error": "temporarily_unavailable", "error_description": "the test server is down"}
        elif self.mode == "error":
            return 500, "<html>Internal Server Error</html>"
        with self._lock:
            client = None
            if grant_type != JWT_GRANT:
                client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
                client = self._clients.get(client_id)
                if client is None or (client.secret is not None and secret != client.secret):
                    return 401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
            scope = form.get("scope", "")
            if grant_type == "refresh_token":
                grant = self._grants.get(form.get("refresh_token", ""))
                if grant is None or grant.client_id != client.client_id or grant.revoked:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token revoked or unknown"}
                if form["refresh_token"] != grant.current:  # reuse of a rotated token: kill the family
                    grant.revoked = True
                    return 400, {"error": "invalid_grant", "error_description": "refresh token reused: family revoked"}
                self.refreshes[grant.username] += 1
                return 200, self._issue(grant.username, grant, scope)
            if grant_type == "client_credentials":
                if client.secret is None or client.app_mailbox is None:
                    return 400, {"error": "unauthorized_client"}
                return 200, self._issue(client.app_mailbox, None, scope)
            if grant_type == JWT_GRANT:
                return self._jwt_bearer(form.get("assertion", ""), scope)
            if grant_type == DEVICE_GRANT:
                device = self._devices.get(form.get("device_code", ""))
                if device is None or device["client_id"] != client.client_id:
                    return 400, {"error": "expired_token"}
                if device["username"] is None:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
                return 200, self._issue(device["username"], self._grants[self._new_grant(client.client_id, device["username"])], scope)
            if grant_type == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if code is None or code["client_id"] != client.client_id or code["redirect_uri"] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "bad code or redirect_uri"}
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if digest != code["challenge"]:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                return 200, self._issue(code["username"], self._grants[self._new_grant(client.client_id, code["username"])], scope)
            return 400, {"error": "unsupported_grant_type"}

    def _jwt_bearer(self, assertion: str, scope: str) -> tuple[int, dict]:
        try:
            unverified = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "==="))
            key = self._service_accounts[unverified["iss"]]
            claims = jwt.decode(assertion, key, algorithms=["RS256"]).claims
            jwt.JWTClaimsRegistry(exp={"essential": True}, iat={"essential": True}).validate(claims)
        except (KeyError, ValueError, IndexError, JoseError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"bad assertion: {type(exc).__name__}"}
        if claims.get("aud") != self.token_url or not claims.get("sub"):
            return 400, {"error": "invalid_grant", "error_description": "wrong audience or no subject"}
        return 200, self._issue(claims["sub"], None, claims.get("scope", scope))

    def device(self, form: dict[str, str]) -> tuple[int, dict]:
        with self._lock:
            if form.get("client_id") not in self._clients:
                return 400, {"error": "invalid_client"}
            code = secrets.token_urlsafe(16)
            user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
            self._devices[code] = {"user_code": user_code, "username": None, "client_id": form["client_id"]}
        return 200, {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": self.url + "/device/verify",
            "expires_in": 600,
            "interval": 1,
            "message": f"To sign in, open {self.url}/device/verify and enter the code {user_code}.",
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """Consent at once for ``consent_user``; returns (status, redirect location or error)."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") not in self._clients or not redirect.startswith("http://127.0.0.1:"):
            return 400, "unknown client or redirect_uri not on loopback"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, "PKCE (S256) is required"
        if self.consent_user is None:
            return 302, redirect + "?" + urlencode({"error": "access_denied", "state": query.get("state", "")})
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {
                "client_id": query["client_id"],
                "redirect_uri": redirect,
                "challenge": query["code_challenge"],
                "username": self.consent_user,
            }
        return 302, redirect + "?" + urlencode({"code": code, "state": query.get("state", "")})

    def introspect(self, form: dict[str, str]) -> dict:
        with self._lock:
            self.introspections += 1
            found = self._access.get(form.get("token", ""))
        if found is None or found[1] < time.time():
            return {"active": False}
        return {"active": True, "username": found[0], "exp": int(found[1])}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client hanging up mid-answer (Dovecot, a test's browser) is not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(server: AuthServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

        def _basic(self) -> tuple[str, str] | None:
            value = self.headers.get("Authorization", "")
            if not value.startswith("Basic "):
                return None
            from urllib.parse import unquote

            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
            return unquote(user), unquote(password)

        def _send(self, status: int, body: dict | str, location: str | None = None) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            form = self._form()
            if path == "/token":
                self._send(*server.token(form, self._basic()))
            elif path == "/introspect":
                self._send(200, server.introspect(form))
            elif path == "/device":
                self._send(*server.device(form))
            else:
                self._send(404, {"error": "not_found"})

        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                status, where = server.authorize(query)
                if status == 302:
                    self._send(302, "", location=where)
                else:
                    self._send(status, where)
            else:
                self._send(404, {"error": "not_found"})

    return Handler
