"""``mailq mailbox authorize``: the interactive consent that gives a mailbox its refresh token.

Two flows, both through authlib: the browser flow (authorization code with
PKCE, redirected to a one-shot HTTP listener on 127.0.0.1, the installed-app
pattern Google requires for the Gmail scope) and the device-code flow
(Microsoft's default: print the code and the URL, poll until the user
consented). Every wait has an absolute deadline (``--timeout``).
"""

from __future__ import annotations

import threading
import time
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from authlib.common.security import generate_token

from ..config import Settings
from ..db import errors_as_mailq
from ..errors import ConsentError, MailqError, TokenEndpointError, UsageError
from ..models import Mailbox, OAuthApp
from . import client, providers, tokens


def authorize(
    settings: Settings,
    mailbox: Mailbox,
    *,
    flow: str | None = None,
    open_browser: bool = True,
    timeout: float = 300,
    say: Callable[[str], None] = print,
) -> None:
    """Run the consent for ``mailbox`` and store its grant; ``flow``: browser | device (default: the provider's)."""
    if mailbox.auth != "oauth2":
        raise UsageError(f"mailbox {mailbox.name!r} signs in with a password: add it with --oauth-app to use OAuth2")
    if mailbox.oauth_grant != "refresh_token":
        raise UsageError(f"mailbox {mailbox.name!r} uses app-only access ({mailbox.oauth_grant}): there is no user consent to give")
    with errors_as_mailq():
        app = OAuthApp.get_by_id(mailbox.oauth_app_id)
    provider = providers.get(app.provider)
    flow = flow or ("device" if provider.consent == "device" and app.device_url else "browser" if app.auth_url else "device")
    deadline = time.monotonic() + timeout
    try:
        if flow == "device":
            token = _device_flow(settings, app, deadline, say)
        else:
            token = _browser_flow(settings, app, mailbox, provider, deadline, open_browser, say)
    except TokenEndpointError as exc:  # nobody retries an interactive command for you
        raise ConsentError(str(exc).replace("transient, will retry", "try again later")) from None
    if not token.refresh_token:
        raise ConsentError(
            f"the authorization server of {app.name!r} gave no refresh token: Google needs access_type=offline "
            "(mailq asks for it), Microsoft the offline_access scope"
        )
    tokens.store_grant(settings, mailbox, token.refresh_token, token)


def _device_flow(settings: Settings, app: OAuthApp, deadline: float, say: Callable[[str], None]) -> client.Token:
    device = client.start_device(settings, app)
    say(device.message or f"To sign in, open {device.verification_uri} and enter the code {device.user_code}")
    say(f"code: {device.user_code}")
    deadline = min(deadline, time.monotonic() + device.expires_in)
    interval = max(device.interval, 0.2)
    while time.monotonic() < deadline:
        token = client.poll_device(settings, app, device)
        if token is not None:
            return token
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
    raise ConsentError("nobody entered the code in time: run `mailq mailbox authorize` again")


class _Callback:
    """What the one-shot loopback listener received."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.done = threading.Event()


def _listener(callback: _Callback) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            if "code" not in query and "error" not in query:
                self.send_error(404)
                return
            ok = "code" in query
            body = (b"mailq: signed in, you can close this window." if ok else b"mailq: consent refused.") + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            callback.path = self.path
            callback.done.set()

    class Server(HTTPServer):
        def handle_error(self, request, client_address) -> None:  # a browser hanging up: no traceback
            pass

    return Server(("127.0.0.1", 0), Handler)


def _browser_flow(
    settings: Settings,
    app: OAuthApp,
    mailbox: Mailbox,
    provider: providers.Provider,
    deadline: float,
    open_browser: bool,
    say: Callable[[str], None],
) -> client.Token:
    if not app.auth_url:
        raise UsageError(f"OAuth app {app.name!r} has no authorization URL: add it with --auth-url, or use --device")
    callback = _Callback()
    server = _listener(callback)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        session = client.session(settings, app, scope=" ".join(app.scopes), redirect_uri=redirect_uri, code_challenge_method="S256")
        verifier = generate_token(64)
        url, state = session.create_authorization_url(
            app.auth_url, code_verifier=verifier, login_hint=mailbox.username, **provider.auth_params
        )
        if open_browser and webbrowser.open(url):
            say("a browser window opened for the consent; if not, open this URL:")
        else:
            say("open this URL in a browser and consent:")
        say(url)
        if not callback.done.wait(max(deadline - time.monotonic(), 0)):
            raise ConsentError("no consent arrived in time: run `mailq mailbox authorize` again")
    finally:
        server.shutdown()
        server.server_close()
    query = parse_qs(urlparse(callback.path or "").query)
    if "error" in query:
        raise ConsentError(f"the consent was refused ({query['error'][0][:100]}): run `mailq mailbox authorize` again")
    try:
        return client.exchange_code(settings, app, session, redirect_uri.rstrip("/") + (callback.path or ""), state, verifier)
    except MailqError as exc:
        raise ConsentError(f"{exc}") from None
