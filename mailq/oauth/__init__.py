"""OAuth2 sign-in: provider defaults, app records, token grants (authlib), the token cache and consent flows.

Modules import downward only: ``providers`` ← ``apps`` ← ``client`` ← ``tokens`` ← ``consent``.
The IMAP session never imports this package; ``mailq.auth`` hands it credentials.
"""
