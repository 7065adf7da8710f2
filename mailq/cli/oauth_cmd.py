"""``mailq oauth app add|list|remove``: the OAuth apps mailboxes sign in through."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ..oauth import apps, providers
from ..text import literal
from .common import add_json, open_db, out, print_json, read_secret
from .mailbox_cmd import _after_import


def register(sub) -> None:
    p = sub.add_parser("oauth", help="OAuth2 apps (Google, Microsoft, any standard authorization server)")
    osub = p.add_subparsers(dest="oauth_command", metavar="ACTION")
    osub.required = True
    app = osub.add_parser("app", help="manage OAuth apps")
    asub = app.add_subparsers(dest="oauth_app_command", metavar="ACTION")
    asub.required = True

    add = asub.add_parser("add", help="add an OAuth app (or update the one with that name)")
    add.add_argument("name")
    add.add_argument("--provider", required=True, choices=sorted(providers.PROVIDERS))
    add.add_argument("--client-id", required=True)
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--client-secret-stdin", action="store_true", help="read the client secret from standard input")
    secret.add_argument("--client-secret-env", metavar="VAR", help="read the client secret from this environment variable")
    add.add_argument("--tenant", help="Microsoft: common, organizations, consumers or the tenant id (app-only access needs the id)")
    add.add_argument("--token-url", help="token endpoint (default: the provider's)")
    add.add_argument("--auth-url", help="authorization endpoint for the browser consent (default: the provider's)")
    add.add_argument("--device-url", help="device-authorization endpoint (default: the provider's)")
    add.add_argument("--scope", action="append", dest="scopes", metavar="S", help="scope (repeatable; default: the provider's IMAP scopes)")
    add.add_argument("--sasl", choices=list(apps.SASL_MECHANISMS), help="SASL mechanism for IMAP (default xoauth2)")
    add.set_defaults(handler=add_app)

    ls = asub.add_parser("list", help="list OAuth apps (never their secrets)")
    add_json(ls)
    ls.set_defaults(handler=list_apps)

    rm = asub.add_parser("remove", help="remove an OAuth app no mailbox uses")
    rm.add_argument("name")
    rm.set_defaults(handler=remove_app)


def add_app(args) -> int:
    settings = open_db(args)
    secret = None
    if args.client_secret_stdin or args.client_secret_env:
        secret = read_secret(args.client_secret_stdin, args.client_secret_env, "--client-secret-env", "client secret")
    spec = apps.validate(
        name=args.name,
        provider=args.provider,
        client_id=args.client_id,
        client_secret=secret,
        tenant=args.tenant,
        token_url=args.token_url,
        auth_url=args.auth_url,
        device_url=args.device_url,
        scopes=args.scopes,
        sasl=args.sasl,
    )
    app, created = apps.save(settings, spec)
    out.print(Text(f"{'added' if created else 'updated'} OAuth app {literal(app.name)} ({app.provider})"))
    if not created and secret is not None:  # mailboxes parked on the old secret are due again
        _after_import(settings)
    return 0


def list_apps(args) -> int:
    open_db(args)
    rows = apps.list_apps()
    if args.json:
        print_json([apps.to_dict(a) for a in rows])
        return 0
    table = Table("name", "provider", "client id", "secret", "tenant", "token endpoint", "scopes", box=None)
    for a in rows:
        table.add_row(
            Text(literal(a.name)),
            a.provider,
            Text(literal(a.client_id)),
            "yes" if a.client_secret else "no",
            Text(literal(a.tenant or "")),
            Text(literal(a.token_url)),
            Text(literal(" ".join(a.scopes))),
        )
    out.print(table if rows else "no OAuth apps yet: add one with `mailq oauth app add NAME --provider google|microsoft|generic ...`")
    return 0


def remove_app(args) -> int:
    open_db(args)
    apps.remove(args.name)
    out.print(Text(f"removed OAuth app {literal(args.name)}"))
    return 0
