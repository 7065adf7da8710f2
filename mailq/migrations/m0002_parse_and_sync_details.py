"""Version 2: parsed headers and preview on messages, UIDNEXT on folders, poll-run detail."""

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate


def upgrade(db):
    migrator = PostgresqlMigrator(db) if isinstance(db, pw.PostgresqlDatabase) else SqliteMigrator(db)
    migrate(
        migrator.add_column("message", "cc_addrs", pw.TextField(null=True)),
        migrator.add_column("message", "in_reply_to", pw.TextField(null=True)),
        migrator.add_column("message", "references_hdr", pw.TextField(null=True)),
        migrator.add_column("message", "preview", pw.TextField(null=True)),
        migrator.add_column("message", "parse_defects", pw.TextField(null=True)),
        migrator.add_column("folder_state", "uidnext", pw.BigIntegerField(null=True)),
        migrator.add_column("folder_state", "last_synced_at", pw.DateTimeField(null=True)),
        migrator.add_column("poll_run", "skipped_count", pw.IntegerField(default=0)),
        migrator.add_column("poll_run", "folders_checked", pw.IntegerField(default=0)),
    )
