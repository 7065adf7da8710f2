"""Version 1: mailboxes, folder state, messages, attachments, poll runs.

The models here are frozen copies of the schema as it was at version 1, so this
migration creates exactly that schema whatever ``models.py`` says today.
"""

import peewee as pw

from ..models import JSONListField, utcnow


def _models(db):
    class Base(pw.Model):
        class Meta:
            database = db

    class Mailbox(Base):
        name = pw.CharField(max_length=200, unique=True)
        host = pw.CharField(max_length=255)
        port = pw.IntegerField()
        security = pw.CharField(max_length=10, default="ssl")
        username = pw.CharField(max_length=320)
        secret = pw.TextField()
        ca_file = pw.TextField(null=True)
        folders = JSONListField(default=lambda: ["INBOX"])
        interval = pw.IntegerField(default=60)
        priority = pw.CharField(max_length=10, default="normal")
        initial_sync = pw.CharField(max_length=32, default="all")
        paused = pw.BooleanField(default=False)
        state = pw.CharField(max_length=16, default="ok", index=True)
        consecutive_failures = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField(null=True)
        last_poll_at = pw.DateTimeField(null=True)
        last_success_at = pw.DateTimeField(null=True)
        last_error = pw.TextField(null=True)
        last_error_class = pw.CharField(max_length=32, null=True)
        created_at = pw.DateTimeField(default=utcnow)
        updated_at = pw.DateTimeField(default=utcnow)

        class Meta:
            table_name = "mailbox"

    class FolderState(Base):
        mailbox = pw.ForeignKeyField(Mailbox, on_delete="CASCADE")
        name = pw.TextField()
        uidvalidity = pw.BigIntegerField(null=True)
        last_uid = pw.BigIntegerField(default=0)
        highestmodseq = pw.BigIntegerField(null=True)

        class Meta:
            table_name = "folder_state"
            indexes = ((("mailbox", "name"), True),)

    class Message(Base):
        mailbox = pw.ForeignKeyField(Mailbox, on_delete="CASCADE")
        folder = pw.TextField()
        uidvalidity = pw.BigIntegerField()
        uid = pw.BigIntegerField()
        message_id = pw.TextField(null=True)
        subject = pw.TextField(null=True)
        from_addr = pw.TextField(null=True)
        to_addrs = pw.TextField(null=True)
        date = pw.DateTimeField(null=True)
        size = pw.BigIntegerField(default=0)
        sha256 = pw.CharField(max_length=64, null=True, index=True)
        skipped_reason = pw.TextField(null=True)
        dispatched_at = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            table_name = "message"
            indexes = (
                (("mailbox", "folder", "uidvalidity", "uid"), True),
                (("mailbox", "created_at"), False),
                (("created_at",), False),
                (("dispatched_at",), False),
                (("mailbox", "message_id"), False),
            )

    class Attachment(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE")
        filename = pw.TextField(null=True)
        content_type = pw.TextField()
        size = pw.BigIntegerField(default=0)
        sha256 = pw.CharField(max_length=64, index=True)

        class Meta:
            table_name = "attachment"

    class PollRun(Base):
        mailbox = pw.ForeignKeyField(Mailbox, on_delete="CASCADE")
        started_at = pw.DateTimeField(default=utcnow)
        finished_at = pw.DateTimeField(null=True)
        outcome = pw.CharField(max_length=16, default="running")
        new_count = pw.IntegerField(default=0)
        error_class = pw.CharField(max_length=32, null=True)
        error_text = pw.TextField(null=True)
        worker = pw.CharField(max_length=200, null=True)

        class Meta:
            table_name = "poll_run"
            indexes = ((("mailbox", "started_at"), False), (("started_at",), False))

    return [Mailbox, FolderState, Message, Attachment, PollRun]


def upgrade(db):
    db.create_tables(_models(db))
