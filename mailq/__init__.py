"""mailq: a mailbox-polling worker farm on RQ and Redis."""

__version__ = "0.1.0"
