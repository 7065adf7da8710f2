"""Scraping the exporter in tests: an in-process server on a free port, and the text parsed by prometheus-client."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailq.exporter import make_app


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(base: str) -> dict[tuple[str, tuple], float]:
    """``(sample name, sorted labels) -> value`` of one scrape, parsed by prometheus-client's own parser."""
    status, text = fetch(base + "/metrics")
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


class InProcessExporter:
    def __init__(self, settings):
        ready = threading.Event()
        self.port = 0

        def started(port: int) -> None:
            self.port = port
            ready.set()

        from wsgiref.simple_server import make_server

        from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

        self.server = make_server("127.0.0.1", 0, make_app(settings), ThreadingWSGIServer, handler_class=_SilentHandler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter(settings):
    """The exporter of the test's settings, serving in this process; test modules import it by name."""
    e = InProcessExporter(settings)
    yield e
    e.close()
