"""Private services for tests, the demo, benchmarks and the chaos harness:
a Dovecot IMAP server, a redis-server and a realistic mail generator."""

from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.mailgen import make_message, make_messages
from tests.testbed.redisd import RedisServer, RedisServerError

__all__ = ["Dovecot", "DovecotError", "RedisServer", "RedisServerError", "make_message", "make_messages"]
