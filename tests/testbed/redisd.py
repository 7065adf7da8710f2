"""A private redis-server child process, so tests and the chaos harness can flush,
kill and restart Redis without touching the machine's shared instance on 6379."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from tests.testbed.procs import PrivateServer

START_TIMEOUT = 10.0
"""Seconds to wait for PING to answer after starting."""


class RedisServerError(RuntimeError):
    """Raised when the private redis-server cannot be started."""


def _ping(port: int) -> bool:
    """True if a Redis on 127.0.0.1:port answers PING (raw RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(PrivateServer):
    """redis-server on 127.0.0.1 without persistence, data dir and log under `root`."""

    LOG = "redis.log"

    def __repr__(self) -> str:
        return f"RedisServer(root={str(self.root)!r}, port={self.port})"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and return once it answers PING; a no-op if running."""
        if self.running():
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server not found: apt-get install -y redis-server")
        self._launch(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.root), "--daemonize", "no"],
            lambda: _ping(self.port),
            f"redis-server on port {self.port}",
            START_TIMEOUT,
            error=RedisServerError,
        )

    def stop(self) -> None:
        """Terminate the server (SIGKILL after 5 s) and reap it; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (all data is gone: no persistence)."""
        self.stop()
        self.start_again()

    def start_again(self, timeout: float = START_TIMEOUT) -> None:
        """Start on the same port, retrying while the old process's port lingers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.start()
                return
            except RedisServerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
