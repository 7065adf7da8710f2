"""The chaos harness: run the whole farm privately, inject real faults, prove nothing is lost or stored twice.

`scripts/chaos` (or `python -m tests.chaos`) runs scenarios; each starts its own
redis-server, Dovecot and database, a scheduler and W workers as separate
processes, feeds mail continuously, injects one kind of fault (or a seeded mix),
then stops the feed, lets the farm drain and compares every message on the
server with the database and the blob store.

Modules: `farm` (services and settings),
`feed` (mail feeder and the database watcher), `faults` (fault primitives),
`verify` (server vs database), `scenarios`, `cli` (table and JSON).
"""
