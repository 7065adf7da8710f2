"""Version 4: per-mailbox push mode (``auto``: IDLE where the server offers it, ``on``, ``off``).

One plain ``ADD COLUMN ... NOT NULL DEFAULT``: peewee's SQLite migrator would make a
NOT NULL column by rebuilding the table, and dropping the old ``mailbox`` table
cascades to every folder state, message and poll run.
"""


def upgrade(db):
    db.execute_sql("ALTER TABLE mailbox ADD COLUMN push VARCHAR(8) NOT NULL DEFAULT 'auto'")
