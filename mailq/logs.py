"""Logging of the long-running processes (worker, scheduler): quiet by default, JSON lines on request.

At INFO a poll logs one line only when something happened (new mail, an
error, a change of health state); RQ's own per-job lines ("email: job
started", "Job OK", "Result discarded") stay at WARNING unless
``MAILQ_LOG_LEVEL=DEBUG``: at 10,000 mailboxes they were ~40,000 lines a minute.
``MAILQ_LOG_FORMAT=json`` writes one JSON object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from .config import Settings

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_RQ_LOGGERS = ("rq", "rq.worker", "rq.scheduler", "rq.queue", "rq.job", "rq_scheduler", "rq_scheduler.scheduler")
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra fields}`` on one line; tracebacks in ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def rq_level(settings: Settings) -> str:
    """The level handed to RQ's loggers: WARNING, or DEBUG when mailq itself is asked to debug."""
    return "DEBUG" if settings.log_level.upper() == "DEBUG" else "WARNING"


def setup(settings: Settings, stream=None) -> None:
    """One handler on the root logger (so RQ adds none of its own), mailq at ``MAILQ_LOG_LEVEL``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("mailq").setLevel(settings.log_level.upper())
    for name in _RQ_LOGGERS:
        logging.getLogger(name).setLevel(rq_level(settings))
