"""What each provider needs: endpoints, scopes, IMAP host and the consent flow it allows.

Facts from the providers' documentation: Google's device flow does not allow the
Gmail scope, so Google consents through a loopback redirect with PKCE; Microsoft
takes the device-code flow; its app-only access uses the ``.default`` scope of
Exchange Online with an application permission (IMAP.AccessAsApp).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Provider:
    name: str
    token_url: str = ""  # "{tenant}" is filled from the app's tenant
    auth_url: str = ""
    device_url: str = ""
    scopes: tuple[str, ...] = ()
    app_only_scopes: tuple[str, ...] = ()  # client credentials; empty: the app's own scopes
    imap_host: str = ""
    consent: str = "loopback"  # loopback | device
    auth_params: dict[str, str] = field(default_factory=dict)  # extra query of the consent URL
    default_tenant: str = ""


_MS = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"

PROVIDERS: dict[str, Provider] = {
    "google": Provider(
        "google",
        token_url="https://oauth2.googleapis.com/token",
        auth_url="https://accounts.google.com/o/oauth2/v2/auth",
        scopes=("https://mail.google.com/",),
        imap_host="imap.gmail.com",
        consent="loopback",
        auth_params={"access_type": "offline", "prompt": "consent"},  # else Google sends no refresh token
    ),
    "microsoft": Provider(
        "microsoft",
        token_url=_MS + "/token",
        auth_url=_MS + "/authorize",
        device_url=_MS + "/devicecode",
        scopes=("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"),
        app_only_scopes=("https://outlook.office365.com/.default",),
        imap_host="outlook.office365.com",
        consent="device",
        default_tenant="common",
    ),
    "generic": Provider("generic"),
}


def get(name: str) -> Provider:
    return PROVIDERS[name]
