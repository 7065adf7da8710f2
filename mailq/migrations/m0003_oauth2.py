"""Version 3: OAuth2 sign-in: apps, a mailbox's auth kind / app / grant, cached access tokens.

Frozen copies of the new tables as they were at version 3 (see m0001's docstring).
"""

import peewee as pw

from ..models import JSONListField, utcnow


def upgrade(db):
    class Base(pw.Model):
        class Meta:
            database = db

    class OAuthApp(Base):
        name = pw.CharField(max_length=200, unique=True)
        provider = pw.CharField(max_length=16)
        client_id = pw.TextField()
        client_secret = pw.TextField(null=True)
        tenant = pw.CharField(max_length=200, null=True)
        token_url = pw.TextField()
        auth_url = pw.TextField(null=True)
        device_url = pw.TextField(null=True)
        scopes = JSONListField(default=list)
        sasl = pw.CharField(max_length=16, default="xoauth2")
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            table_name = "oauth_app"

    class Mailbox(Base):
        class Meta:
            table_name = "mailbox"

    class OAuthToken(Base):
        mailbox = pw.ForeignKeyField(Mailbox, primary_key=True, on_delete="CASCADE")
        access_token = pw.TextField(null=True)
        expires_at = pw.DateTimeField(null=True)
        refreshed_at = pw.DateTimeField(null=True)
        last_attempt_at = pw.DateTimeField(null=True)
        last_outcome = pw.CharField(max_length=24, null=True)
        last_error = pw.TextField(null=True)

        class Meta:
            table_name = "oauth_token"

    db.create_tables([OAuthApp, OAuthToken])
    # Plain ALTERs: playhouse's SqliteMigrator rebuilds the table for a NOT NULL column, and
    # dropping the old mailbox table would cascade-delete every folder state and message.
    for sql in (
        "ALTER TABLE mailbox ADD COLUMN auth VARCHAR(16) NOT NULL DEFAULT 'password'",
        "ALTER TABLE mailbox ADD COLUMN oauth_app_id INTEGER NULL REFERENCES oauth_app (id) ON DELETE RESTRICT",
        "ALTER TABLE mailbox ADD COLUMN oauth_grant VARCHAR(24) NULL",
    ):
        db.execute_sql(sql)
