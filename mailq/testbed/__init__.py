"""Private services for tests, the demo, benchmarks and the chaos harness:
a Dovecot IMAP server, a redis-server and a realistic mail generator."""

from mailq.testbed.dovecot import Dovecot, DovecotError
from mailq.testbed.mailgen import make_message, make_messages
from mailq.testbed.redisd import RedisServer, RedisServerError

__all__ = ["Dovecot", "DovecotError", "RedisServer", "RedisServerError", "make_message", "make_messages"]
