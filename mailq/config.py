"""Settings: read once from the environment (and an optional ``.env``), validated up front.

Every setting is declared once in ``SETTINGS`` with its default and a one-line
description; the README's configuration table is generated from the same list.
Errors name the setting so an operator knows what to fix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(name: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _database_url(name: str, raw: str) -> str:
    scheme = urlparse(raw).scheme
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(f"{name}: unsupported scheme {scheme!r}, use sqlite:// or postgresql://")
    return raw


def _redis_url(name: str, raw: str) -> str:
    scheme = urlparse(raw).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name}: unsupported scheme {scheme!r}, use redis://host:port/db")
    return raw


def _storage_url(name: str, raw: str) -> str:
    scheme = urlparse(raw).scheme
    if scheme not in ("file", "s3"):
        raise ConfigError(f"{name}: unsupported scheme {scheme!r}, use file://PATH or s3://bucket/prefix")
    return raw


def _hook(name: str, raw: str) -> str:
    if raw and (":" not in raw or raw.startswith(":") or raw.endswith(":")):
        raise ConfigError(f"{name}: expected package.module:function, got {raw!r}")
    return raw


def _str(name: str, raw: str) -> str:
    return raw


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected 1/0, true/false, yes/no or on/off, got {raw!r}")


def _delays(name: str, raw: str) -> str:
    """Validated here, kept as normalized text (so ``as_env`` round-trips); see ``Settings.retry_delays``."""
    try:
        values = tuple(int(p) for p in raw.replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(f"{name}: expected seconds separated by commas (e.g. 30,120,600), got {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name}: expected one or more non-negative delays, got {raw!r}")
    return ",".join(str(v) for v in values)


def _log_level(name: str, raw: str) -> str:
    if raw.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{name}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return raw.upper()


def _log_format(name: str, raw: str) -> str:
    if raw.lower() not in ("text", "json"):
        raise ConfigError(f"{name}: expected text or json, got {raw!r}")
    return raw.lower()


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    parse: Callable[[str, str], Any]
    doc: str


# field name -> declaration. Defaults are strings, parsed like environment values.
SETTINGS: dict[str, Setting] = {
    "redis_url": Setting(
        "MAILQ_REDIS_URL", "", _redis_url, "Redis for queues and schedules (else REDIS_URL, else redis://127.0.0.1:6379/0)"
    ),
    "database_url": Setting(
        "MAILQ_DATABASE_URL", "", _database_url, "sqlite:///PATH or postgresql://user@host/db (default: SQLite at VAR_DIR/mailq.db)"
    ),
    "storage_url": Setting("MAILQ_STORAGE_URL", "", _storage_url, "where raw messages and attachments go (default: file://VAR_DIR/blobs)"),
    "storage_concurrency": Setting(
        "MAILQ_STORAGE_CONCURRENCY", "16", lambda n, r: _int(n, r, 1), "S3 store: blob uploads in flight per worker process"
    ),
    "storage_deadline": Setting(
        "MAILQ_STORAGE_DEADLINE",
        "120",
        lambda n, r: _float(n, r, 1),
        "S3 store: a batch's uploads not all acknowledged by then fail the poll",
    ),
    "var_dir": Setting("MAILQ_VAR_DIR", "./var", _str, "directory for the default database, blobs and secret key"),
    "secret_key": Setting("MAILQ_SECRET_KEY", "", _str, "Fernet key encrypting stored passwords (default: read from VAR_DIR/secret.key)"),
    "poll_interval": Setting("MAILQ_POLL_INTERVAL", "60", lambda n, r: _int(n, r, 1), "default seconds between polls of a mailbox"),
    "max_message_bytes": Setting(
        "MAILQ_MAX_MESSAGE_BYTES", "52428800", lambda n, r: _int(n, r, 1), "messages larger than this are recorded as skipped, not fetched"
    ),
    "connect_timeout": Setting(
        "MAILQ_CONNECT_TIMEOUT",
        "10",
        lambda n, r: _float(n, r, 0.1),
        "seconds to connect, finish TLS, read the greeting and log in, in total",
    ),
    "read_timeout": Setting(
        "MAILQ_READ_TIMEOUT", "60", lambda n, r: _float(n, r, 0.1), "seconds an IMAP answer may stall (see MAILQ_MIN_TRANSFER_RATE)"
    ),
    "min_transfer_rate": Setting(
        "MAILQ_MIN_TRANSFER_RATE",
        "16384",
        lambda n, r: _int(n, r, 1),
        "bytes/s an IMAP answer must keep up over each MAILQ_READ_TIMEOUT window, or the connection is closed",
    ),
    "ca_file": Setting("MAILQ_CA_FILE", "", _str, "extra CA bundle to verify IMAP servers (a mailbox may set its own)"),
    "fetch_batch": Setting("MAILQ_FETCH_BATCH", "100", lambda n, r: _int(n, r, 1), "messages fetched and committed per batch"),
    "fetch_batch_bytes": Setting(
        "MAILQ_FETCH_BATCH_BYTES", "16777216", lambda n, r: _int(n, r, 1), "a batch stops growing at this many bytes (bounds worker memory)"
    ),
    "poll_budget_messages": Setting(
        "MAILQ_POLL_BUDGET_MESSAGES",
        "2000",
        lambda n, r: _int(n, r, 1),
        "a poll stops after this many new messages; the next poll continues",
    ),
    "poll_budget_seconds": Setting(
        "MAILQ_POLL_BUDGET_SECONDS", "60", lambda n, r: _float(n, r, 1), "a poll stops starting new batches after this many seconds"
    ),
    "failing_poll_slots": Setting(
        "MAILQ_FAILING_POLL_SLOTS",
        "2",
        lambda n, r: _int(n, r, 1),
        "polls of failing mailboxes running at once, farm-wide (keep below the worker count: the rest is healthy mail's)",
    ),
    "backoff_base": Setting(
        "MAILQ_BACKOFF_BASE", "30", lambda n, r: _float(n, r, 0), "first retry delay after a transient failure (doubles each time)"
    ),
    "backoff_max": Setting(
        "MAILQ_BACKOFF_MAX", "1800", lambda n, r: _float(n, r, 0), "longest retry delay after repeated transient failures"
    ),
    "scheduler_interval": Setting(
        "MAILQ_SCHEDULER_INTERVAL", "1", lambda n, r: _float(n, r, 0.1), "how often the scheduler looks for due polls"
    ),
    "reconcile_interval": Setting(
        "MAILQ_RECONCILE_INTERVAL", "60", lambda n, r: _float(n, r, 1), "how often the scheduler reconciles schedules with the database"
    ),
    "lock_ttl": Setting(
        "MAILQ_LOCK_TTL",
        "60",
        lambda n, r: _int(n, r, 5),
        "seconds a poll's mailbox lock lives unless renewed (a killed poll frees it this fast)",
    ),
    "worker_fork": Setting(
        "MAILQ_WORKER_FORK",
        "0",
        _bool,
        "1: fork a process per job (RQ's default, full isolation, ~30 ms CPU per poll); 0: run jobs in the worker process",
    ),
    "job_timeout": Setting("MAILQ_JOB_TIMEOUT", "900", lambda n, r: _int(n, r, 10), "RQ kills a poll job running longer than this"),
    "hook": Setting("MAILQ_HOOK", "", _hook, "package.module:function called with each new message id"),
    "webhook_url": Setting("MAILQ_WEBHOOK_URL", "", _str, "URL receiving a signed JSON POST per new message"),
    "webhook_secret": Setting("MAILQ_WEBHOOK_SECRET", "", _str, "HMAC-SHA256 key signing webhook bodies"),
    "dispatch_retry_delays": Setting(
        "MAILQ_DISPATCH_RETRY_DELAYS",
        "30,120,600",
        _delays,
        "seconds before each retry of a failed hook/webhook delivery (one retry per value)",
    ),
    "oauth_refresh_ahead": Setting(
        "MAILQ_OAUTH_REFRESH_AHEAD",
        "300",
        lambda n, r: _float(n, r, 0),
        "seconds before expiry an OAuth2 access token is refreshed (at most half its lifetime)",
    ),
    "console_refresh": Setting("MAILQ_CONSOLE_REFRESH", "2", lambda n, r: _float(n, r, 0.2), "seconds between console refreshes"),
    "log_level": Setting(
        "MAILQ_LOG_LEVEL", "INFO", _log_level, "logging level of workers and scheduler (DEBUG also shows RQ's per-job lines)"
    ),
    "log_format": Setting("MAILQ_LOG_FORMAT", "text", _log_format, "text, or json: one JSON object per log line (for log shippers)"),
}


@dataclass(frozen=True)
class Settings:
    redis_url: str
    database_url: str
    storage_url: str
    storage_concurrency: int
    storage_deadline: float
    var_dir: Path
    secret_key: str
    poll_interval: int
    max_message_bytes: int
    connect_timeout: float
    read_timeout: float
    min_transfer_rate: int
    ca_file: str
    fetch_batch: int
    fetch_batch_bytes: int
    poll_budget_messages: int
    poll_budget_seconds: float
    failing_poll_slots: int
    backoff_base: float
    backoff_max: float
    scheduler_interval: float
    reconcile_interval: float
    lock_ttl: int
    worker_fork: bool
    job_timeout: int
    hook: str
    webhook_url: str
    webhook_secret: str
    dispatch_retry_delays: str
    oauth_refresh_ahead: float
    console_refresh: float
    log_level: str
    log_format: str

    @property
    def secret_key_file(self) -> Path:
        return self.var_dir / "secret.key"

    @property
    def retry_delays(self) -> list[int]:
        """``dispatch_retry_delays`` as seconds: one retry per value."""
        return [int(v) for v in self.dispatch_retry_delays.split(",") if v]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process (workers, scheduler)."""
        env = {}
        for field, setting in SETTINGS.items():
            value = getattr(self, field)
            env[setting.env] = str(value)
        return env


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Build settings from ``environ`` (default ``os.environ``) over an optional ``.env`` file."""
    env: dict[str, str] = {}
    if env_file is not None:
        env.update(_read_env_file(Path(env_file)))
    env.update(os.environ if environ is None else environ)

    values: dict[str, Any] = {}
    for field, setting in SETTINGS.items():
        raw = env.get(setting.env, setting.default).strip()
        if field == "redis_url" and not raw:
            raw = env.get("REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
        values[field] = setting.parse(setting.env, raw) if raw else raw
    var_dir = Path(values["var_dir"] or "./var")
    values["var_dir"] = var_dir
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{var_dir / 'mailq.db'}"
    if not values["storage_url"]:
        values["storage_url"] = f"file://{var_dir / 'blobs'}"
    return Settings(**values)


_current: Settings | None = None


def get() -> Settings:
    """Settings of this process, loaded on first use (not at import time)."""
    global _current
    if _current is None:
        _current = load()
    return _current


def use(settings: Settings | None) -> None:
    """Install settings for this process (tests, and the CLI after parsing options)."""
    global _current
    _current = settings
