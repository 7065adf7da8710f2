"""``mailq db upgrade`` and ``mailq secrets rotate``."""

from __future__ import annotations

import os

from .. import crypto, files, migrations
from ..db import database, errors_as_mailq
from ..errors import UsageError
from ..models import Mailbox, OAuthApp, OAuthToken
from ..ops import privacy
from .common import err, open_db, out


def register(sub) -> None:
    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    dsub.required = True
    up = dsub.add_parser("upgrade", help="create or upgrade the schema in place (never drops data)")
    up.set_defaults(handler=upgrade)

    s = sub.add_parser("secrets", help="stored credentials")
    ssub = s.add_subparsers(dest="secrets_command", metavar="ACTION")
    ssub.required = True
    rot = ssub.add_parser(
        "rotate",
        help="re-encrypt every stored secret (passwords, OAuth grants and tokens, client secrets) with a new key, in one transaction",
    )
    rot.add_argument("--new-key-env", required=True, metavar="VAR", help="environment variable holding the new Fernet key")
    rot.set_defaults(handler=rotate)


def upgrade(args) -> int:
    settings = open_db(args, require_schema=False)
    created = crypto.ensure_key(settings)
    if created:
        out.print(f"generated a secret key in {created} (mode 0600): back it up; without it stored passwords are unreadable")
    before = migrations.current_version()
    applied = migrations.upgrade(on_step=lambda v, n: out.print(f"applied migration {v:04d} {n}"))
    if not applied:
        out.print(f"database is up to date (schema version {before})")
    else:
        out.print(f"database upgraded from version {before} to {applied[-1]}")
    tightened = privacy.tighten(settings)
    if tightened:
        out.print(
            f"made {len(tightened)} stored file(s) and directories owner-only (they were readable by other users), e.g. {tightened[0]}"
        )
    return 0


def _rotate_oauth(old_key: str, new_key: str) -> None:
    """OAuth apps' client secrets and cached access tokens, in the caller's transaction."""

    for app in OAuthApp.select(OAuthApp.id, OAuthApp.name, OAuthApp.client_secret).where(OAuthApp.client_secret.is_null(False)):
        secret = crypto.reencrypt(app.client_secret, old_key, new_key, f"the client secret of OAuth app {app.name!r}")
        OAuthApp.update(client_secret=secret).where(OAuthApp.id == app.id).execute()
    for row in OAuthToken.select(OAuthToken.mailbox, OAuthToken.access_token).where(OAuthToken.access_token.is_null(False)):
        token = crypto.reencrypt(row.access_token, old_key, new_key, f"the cached token of mailbox {row.mailbox_id}")
        OAuthToken.update(access_token=token).where(OAuthToken.mailbox == row.mailbox_id).execute()


def rotate(args) -> int:
    settings = open_db(args)
    new_key = os.environ.get(args.new_key_env, "").strip()
    if not new_key:
        raise UsageError(f"{args.new_key_env} is not set: put the new key in that environment variable")
    old_key = crypto.load_key(settings)
    crypto._fernet(new_key, args.new_key_env)
    with errors_as_mailq(), database.atomic():
        mailboxes = list(Mailbox.select(Mailbox.id, Mailbox.name, Mailbox.secret))
        for mb in mailboxes:
            token = crypto.reencrypt(mb.secret, old_key, new_key, f"the password of mailbox {mb.name!r}")
            Mailbox.update(secret=token).where(Mailbox.id == mb.id).execute()
        _rotate_oauth(old_key, new_key)
    if not settings.secret_key:
        path = settings.secret_key_file
        tmp = path.with_suffix(".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.FILE_MODE)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key + "\n")
        os.replace(tmp, path)
        out.print(f"re-encrypted {len(mailboxes)} password(s); {path} now holds the new key")
    else:
        out.print(
            f"re-encrypted {len(mailboxes)} password(s); now set MAILQ_SECRET_KEY to the value of {args.new_key_env} "
            "everywhere mailq runs (workers, scheduler, console)"
        )
        err.print("note: processes still running with the old key cannot decrypt passwords until restarted")
    return 0
