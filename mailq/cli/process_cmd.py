"""``mailq scheduler``, ``worker``, ``idler`` and ``metrics``: the farm's long-running processes (the Procfile's lines).

They are parsed on their own (``cli.main`` builds only this module's parsers for
them), so each process imports the engine it runs and none of the operator
commands or Rich.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .. import scheduler, worker
from ..errors import MailqError
from ..metrics import DEFAULT_PORT
from ..queues import connect
from .boot import open_db, settings

COMMANDS = ("scheduler", "worker", "idler", "metrics")


def register(sub) -> None:
    s = sub.add_parser("scheduler", help="run the scheduler (recurring polls, reconcile, outbox sweep) until stopped")
    s.set_defaults(handler=run_scheduler)

    w = sub.add_parser("worker", help="run an RQ worker on email-high, email, workflow, default (in that order)")
    w.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    w.add_argument("--name", help="worker name (default: random)")
    w.add_argument(
        "--fork", action=argparse.BooleanOptionalAction, default=None, help="fork a process per job (default: MAILQ_WORKER_FORK, off)"
    )
    w.set_defaults(handler=run_worker)

    i = sub.add_parser("idler", help="hold IDLE connections for pushed mailboxes and poll them on new mail, until stopped")
    i.add_argument("--name", help="idler name (default: host, pid and a random suffix)")
    i.set_defaults(handler=run_idler)

    m = sub.add_parser("metrics", help="serve Prometheus /metrics and /healthz")
    m.add_argument("--host", default="0.0.0.0", help="address to listen on (default all interfaces)")
    m.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    m.set_defaults(handler=run_metrics)


def run_scheduler(args) -> int:
    settings = open_db(args)
    connect(settings, check=True)
    scheduler.run(settings)
    return 0


def run_worker(args) -> int:
    settings = open_db(args)
    worker.run(settings, burst=args.burst, name=args.name, fork=args.fork)
    return 0


def run_idler(args) -> int:
    from ..push import idler  # each process loads the engine it runs, no more (start-up on two cores)

    settings = open_db(args)
    connect(settings, check=True)
    idler.run(settings, args.name)
    return 0


def run_metrics(args) -> int:
    from ..exporter import serve  # each process loads the engine it runs, no more (start-up on two cores)

    s = settings(args)
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(port: int) -> None:
        print(f"mailq metrics: listening on http://{args.host}:{port}/metrics", file=sys.stderr, flush=True)

    try:
        serve(s, args.host, args.port, ready=ready)
    except OSError as exc:
        raise MailqError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}: pick another --port") from None
    return 0
