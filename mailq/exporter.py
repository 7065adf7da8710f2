"""``mailq metrics``: Prometheus ``/metrics`` and ``/healthz``, from Redis and the database only.

Nothing is kept in this process: counters and histograms are read from Redis
(``mailq.metrics``), gauges are counted at scrape time (mailboxes by state in
one GROUP BY, queues and registries in one pipelined round trip), so any
number of exporters on any hosts agree, and a restart loses nothing.
``/healthz`` answers 200 only when Redis and the database answer and a
scheduler's liveness key is fresh; otherwise 503 with one line per problem.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from wsgiref.simple_server import make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from . import db, metrics
from .config import Settings
from .errors import MailqError
from .models import utcnow
from .ops.farm import queue_stats, workers
from .ops.overview import _state_counts
from .push import leases
from .queues import connect
from .schedule import liveness

log = logging.getLogger("mailq.exporter")


def _counters(values: dict[str, float]) -> Iterator[Metric]:
    for name, (label, known, doc) in metrics.COUNTERS.items():
        family = CounterMetricFamily(f"mailq_{name}", doc, labels=[label] if label else None)
        prefix = f"c:{name}:"
        if label is None:
            family.add_metric([], values.get(prefix, 0.0))
        else:
            seen = {field[len(prefix) :]: value for field, value in values.items() if field.startswith(prefix)}
            for key in sorted(set(known) | set(seen)):
                family.add_metric([key], seen.get(key, 0.0))
        yield family


def _histograms(values: dict[str, float]) -> Iterator[Metric]:
    for name, (bounds, doc) in metrics.HISTOGRAMS.items():
        cumulative, buckets = 0.0, []
        for i, bound in enumerate((*bounds, math.inf)):
            cumulative += values.get(f"h:{name}:{i}", 0.0)
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        family = HistogramMetricFamily(f"mailq_{name}_seconds", doc)
        family.add_metric([], buckets, sum_value=values.get(f"h:{name}:sum", 0.0))
        yield family


class MailqCollector:
    """Reads everything at scrape time; a service that is down yields ``mailq_up{service}`` 0, not an error."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("mailq_up", "Whether the exporter reached the service (redis, database).", labels=["service"])
        try:
            yield from self._from_database()
            up.add_metric(["database"], 1)
        except MailqError as exc:
            log.warning("scrape: database: %s", exc)
            up.add_metric(["database"], 0)
        finally:
            db.close()  # one connection per scrape: the HTTP server runs each request in a new thread
        try:
            yield from self._from_redis()
            up.add_metric(["redis"], 1)
        except (MailqError, redis.exceptions.RedisError) as exc:
            log.warning("scrape: redis: %s", exc)
            up.add_metric(["redis"], 0)
        yield up
        took = GaugeMetricFamily("mailq_scrape_duration_seconds", "How long this exporter took to gather the figures.")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _from_database(self) -> Iterator[Metric]:
        db.bind(self.settings.database_url)
        family = GaugeMetricFamily("mailq_mailboxes", "Mailboxes by state (ok, failing, auth_error, paused).", labels=["state"])
        for state, n in sorted(_state_counts().items()):
            family.add_metric([state], n)
        yield family

    def _from_redis(self) -> Iterator[Metric]:

        conn = connect(self.settings)
        values = metrics.read(conn)
        stats = queue_stats(self.settings)
        alive, reconciled = liveness(conn)
        worker_list = workers(self.settings)
        yield from _counters(values)
        yield from _histograms(values)
        depth = GaugeMetricFamily(
            "mailq_queue_jobs", "Jobs per queue and state (queued, started, scheduled, deferred).", labels=["queue", "state"]
        )
        failed = GaugeMetricFamily("mailq_failed_jobs", "Jobs in each queue's failed registry.", labels=["queue"])
        for q in stats:
            for state in ("queued", "started", "scheduled", "deferred"):
                depth.add_metric([q.name, state], getattr(q, state))
            failed.add_metric([q.name], q.failed)
        yield depth
        yield failed
        live = GaugeMetricFamily("mailq_workers", "Registered RQ workers: busy, idle, stale (heartbeat too old).", labels=["state"])
        counts = {"busy": 0, "idle": 0, "stale": 0}
        for w in worker_list:
            key = "stale" if w.stale else ("busy" if w.state == "busy" else "idle")
            counts[key] += 1
        for state, n in counts.items():
            live.add_metric([state], n)
        yield live
        yield _push_connections(conn)
        up = GaugeMetricFamily("mailq_scheduler_up", "1 while a scheduler's liveness key is fresh.")
        up.add_metric([], 1 if alive else 0)
        yield up
        if reconciled is not None:
            age = GaugeMetricFamily("mailq_scheduler_last_reconcile_age_seconds", "Seconds since the last finished reconcile.")
            age.add_metric([], max((utcnow() - reconciled).total_seconds(), 0.0))
            yield age


def _push_connections(conn) -> Metric:
    """IDLE connections by state, summed over the live idlers (each publishes its own states hash)."""
    family = GaugeMetricFamily(
        "mailq_push_connections", "IDLE connections held by live idlers, by state (connected, reconnecting, parked).", labels=["state"]
    )
    counts = dict.fromkeys((leases.CONNECTED, leases.RECONNECTING, leases.PARKED), 0)
    idlers = leases.live_idlers(conn)
    pipe = conn.pipeline(transaction=False)
    for idler in idlers:
        pipe.hvals(leases.states_key(idler))
    for states in pipe.execute() if idlers else []:
        for state in states:
            counts[state.decode()] = counts.get(state.decode(), 0) + 1
    for state, n in counts.items():
        family.add_metric([state], n)
    return family


def health(settings: Settings) -> list[str]:
    """The problems that make ``/healthz`` fail; empty when healthy."""

    problems = []
    try:
        with db.errors_as_mailq():
            db.bind(settings.database_url)
            db.database.execute_sql("SELECT 1 FROM mailbox LIMIT 1")
    except MailqError as exc:
        problems.append(f"database: {exc}")
    finally:
        db.close()
    try:
        alive, _ = liveness(connect(settings))
        if not alive:
            problems.append("scheduler: no live scheduler (its liveness key expired): start `mailq scheduler`")
    except redis.exceptions.RedisError as exc:
        problems.append(f"redis: unreachable: {exc}: check MAILQ_REDIS_URL")
    return problems


def make_app(settings: Settings):
    """A WSGI app: ``/healthz`` here, everything else is prometheus-client's ``/metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailqCollector(settings))
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            problems = health(settings)
            body = ("\n".join(problems) if problems else "ok") + "\n"
            status = "503 Service Unavailable" if problems else "200 OK"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [body.encode()]
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"see /metrics and /healthz\n"]
        return metrics_app(environ, start_response)

    return app


def serve(settings: Settings, host: str, port: int, ready=None) -> None:
    """Serve until interrupted; ``ready(port)`` is called once listening (the port chosen when 0)."""
    server = make_server(host, port, make_app(settings), ThreadingWSGIServer, handler_class=_SilentHandler)
    server.daemon_threads = True
    if ready is not None:
        ready(server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
