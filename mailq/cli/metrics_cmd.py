"""``mailq metrics [--host H] [--port 9808]``: the Prometheus exporter (``/metrics``, ``/healthz``)."""

from __future__ import annotations

import logging

from ..errors import MailqError
from ..exporter import DEFAULT_PORT, serve
from .common import err, settings


def register(sub) -> None:

    p = sub.add_parser("metrics", help="serve Prometheus /metrics and /healthz")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default all interfaces)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.set_defaults(handler=run)


def run(args) -> int:

    s = settings(args)
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        serve(s, args.host, args.port, ready=lambda port: err.print(f"mailq metrics: listening on http://{args.host}:{port}/metrics"))
    except OSError as exc:
        raise MailqError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}: pick another --port") from None
    return 0
