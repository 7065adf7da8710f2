"""Settings: read once from the environment (and an optional ``.env``), validated up front.

Every setting is declared once, as a field of ``Settings`` with its variable,
default, validation and description; ``SETTINGS``, ``load()`` and the README's
configuration table (``markdown_table()``) are derived from those declarations.
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

from dotenv import dotenv_values

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


def _int_upto(name: str, raw: str, minimum: int, maximum: int) -> int:
    value = _int(name, raw, minimum)
    if value > maximum:
        raise ConfigError(f"{name}: must be at most {maximum}, got {value}")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
    return raw


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
    """One setting: its variable, its default (parsed like an environment value), how it is
    validated, and how the README shows it (``shown`` overrides the default's display)."""

    env: str
    default: str
    parse: Callable[[str, str], Any]
    doc: str
    shown: str | None = None


def _duration(name: str, raw: str) -> int:
    """Seconds, or a number with a unit: ``90s``, ``30m``, ``12h``, ``7d``; 0 means unbounded."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = raw.strip().lower()
    scale = units.get(text[-1:], 0) if text else 0
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"{name}: expected seconds or a duration like 7d, 12h, 30m, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative, got {raw!r}")
    return int(value)


def _setting(env: str, default: str, parse: Callable[[str, str], Any], doc: str, shown: str | None = None) -> Any:
    return dataclasses.field(metadata={"setting": Setting(env, default, parse, doc, shown)})


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: the field, its variable, default, validation and documentation.

    ``SETTINGS`` (below), ``load()`` and the README's table (``markdown_table()``,
    checked by tests/test_config.py) all come from these declarations.
    """

    redis_url: str = _setting(
        "MAILQ_REDIS_URL", "", _redis_url, "Redis for queues and schedules", "`REDIS_URL`, else `redis://127.0.0.1:6379/0`"
    )
    database_url: str = _setting(
        "MAILQ_DATABASE_URL", "", _database_url, "`sqlite:///PATH` or `postgresql://user@host/db`", "`sqlite:///VAR_DIR/mailq.db`"
    )
    storage_url: str = _setting(
        "MAILQ_STORAGE_URL",
        "",
        _storage_url,
        "where raw messages and attachments go (content-addressed by sha256): `file://PATH` or `s3://BUCKET[/PREFIX]` (AWS credentials, region and endpoint from the standard `AWS_*` variables or profiles; see [docs/deploy.md](docs/deploy.md))",
        "`file://VAR_DIR/blobs`",
    )
    storage_concurrency: int = _setting(
        "MAILQ_STORAGE_CONCURRENCY", "16", lambda n, r: _int(n, r, 1), "S3 store: blob uploads in flight per worker process"
    )
    storage_deadline: float = _setting(
        "MAILQ_STORAGE_DEADLINE",
        "120",
        lambda n, r: _float(n, r, 1),
        "S3 store: a batch's uploads not all acknowledged by then fail the poll (it is retried)",
    )
    var_dir: Path = _setting("MAILQ_VAR_DIR", "./var", _str, "directory for the default database, blobs and secret key")
    secret_key: str = _setting("MAILQ_SECRET_KEY", "", _str, "Fernet key encrypting stored passwords", "read from `VAR_DIR/secret.key`")
    poll_interval: int = _setting("MAILQ_POLL_INTERVAL", "60", lambda n, r: _int(n, r, 1), "default seconds between polls of a mailbox")
    max_message_bytes: int = _setting(
        "MAILQ_MAX_MESSAGE_BYTES", "52428800", lambda n, r: _int(n, r, 1), "larger messages are recorded as skipped, not fetched"
    )
    connect_timeout: float = _setting(
        "MAILQ_CONNECT_TIMEOUT",
        "10",
        lambda n, r: _float(n, r, 0.1),
        "seconds to connect, finish TLS, read the greeting and log in, in total",
    )
    read_timeout: float = _setting(
        "MAILQ_READ_TIMEOUT", "60", lambda n, r: _float(n, r, 0.1), "seconds an IMAP answer may stall (see MAILQ_MIN_TRANSFER_RATE)"
    )
    min_transfer_rate: int = _setting(
        "MAILQ_MIN_TRANSFER_RATE",
        "16384",
        lambda n, r: _int(n, r, 1),
        "bytes/s an IMAP answer must keep up over each MAILQ_READ_TIMEOUT window, or the connection is closed",
    )
    ca_file: str = _setting("MAILQ_CA_FILE", "", _str, "extra CA bundle to verify IMAP servers (a mailbox may set its own `--ca-file`)")
    fetch_batch: int = _setting("MAILQ_FETCH_BATCH", "100", lambda n, r: _int(n, r, 1), "messages fetched and committed per batch")
    fetch_batch_bytes: int = _setting(
        "MAILQ_FETCH_BATCH_BYTES", "16777216", lambda n, r: _int(n, r, 1), "a batch stops growing at this many bytes (bounds worker memory)"
    )
    poll_budget_messages: int = _setting(
        "MAILQ_POLL_BUDGET_MESSAGES",
        "2000",
        lambda n, r: _int(n, r, 1),
        "a poll stops after this many new messages; the next poll follows at once",
    )
    poll_budget_seconds: float = _setting(
        "MAILQ_POLL_BUDGET_SECONDS", "60", lambda n, r: _float(n, r, 1), "a poll stops starting new batches after this many seconds"
    )
    failing_poll_slots: int = _setting(
        "MAILQ_FAILING_POLL_SLOTS",
        "2",
        lambda n, r: _int(n, r, 1),
        "polls of failing mailboxes running at once, farm-wide (keep it below the worker count)",
    )
    poll_group_size: int = _setting(
        "MAILQ_POLL_GROUP_SIZE",
        "10",
        lambda n, r: _int(n, r, 1),
        "due mailboxes one RQ job may poll in turn, each under its own claim (1: one job per poll)",
    )
    poll_group_patience: float = _setting(
        "MAILQ_POLL_GROUP_PATIENCE",
        "2",
        lambda n, r: _float(n, r, 0.5),
        "seconds one poll may hold up the rest of its group before they move to a job of their own",
    )
    backoff_base: float = _setting(
        "MAILQ_BACKOFF_BASE", "30", lambda n, r: _float(n, r, 0), "first retry delay after a transient failure (doubles each time)"
    )
    backoff_max: float = _setting("MAILQ_BACKOFF_MAX", "1800", lambda n, r: _float(n, r, 0), "longest retry delay")
    scheduler_interval: float = _setting(
        "MAILQ_SCHEDULER_INTERVAL", "1", lambda n, r: _float(n, r, 0.1), "how often the scheduler looks for due polls"
    )
    reconcile_interval: float = _setting(
        "MAILQ_RECONCILE_INTERVAL", "60", lambda n, r: _float(n, r, 1), "how often the scheduler reconciles schedules with the database"
    )
    lock_ttl: int = _setting(
        "MAILQ_LOCK_TTL",
        "60",
        lambda n, r: _int(n, r, 5),
        "a running poll's claim lives this long unless renewed (a killed poll frees its mailbox this fast)",
    )
    worker_fork: bool = _setting(
        "MAILQ_WORKER_FORK",
        "0",
        _bool,
        "`1`: fork a process per job (RQ's default, full isolation); `0`: run jobs in the worker process (see below)",
    )
    job_timeout: int = _setting("MAILQ_JOB_TIMEOUT", "900", lambda n, r: _int(n, r, 10), "RQ stops a job running longer than this")
    hook: str = _setting("MAILQ_HOOK", "", _hook, "`package.module:function` called with each new message id")
    webhook_url: str = _setting("MAILQ_WEBHOOK_URL", "", _str, "URL receiving a JSON POST per new message")
    webhook_secret: str = _setting(
        "MAILQ_WEBHOOK_SECRET", "", _str, "HMAC-SHA256 key signing webhook bodies (`X-Mailq-Signature: sha256=<hex>`)"
    )
    webhook_payload: str = _setting(
        "MAILQ_WEBHOOK_PAYLOAD",
        "2",
        lambda n, r: _choice(n, r, ("1", "2")),
        "webhook body version: `2` adds bodies, attachments and URLs ([docs/webhook.md](docs/webhook.md)); `1` for old receivers",
    )
    webhook_body_chars: int = _setting(
        "MAILQ_WEBHOOK_BODY_CHARS",
        "65536",
        lambda n, r: _int(n, r, 0),
        "text and HTML bodies in a v2 webhook are cut at this many characters (`truncated: true`)",
    )
    webhook_url_expiry: int = _setting(
        "MAILQ_WEBHOOK_URL_EXPIRY",
        "86400",
        lambda n, r: _int_upto(n, r, 60, 604800),
        "seconds the pre-signed raw/attachment URLs of a v2 webhook stay valid (S3 stores; at most 7 days)",
    )
    dispatch_retry_delays: str = _setting(
        "MAILQ_DISPATCH_RETRY_DELAYS", "30,120,600", _delays, "seconds before each retry of a failed hook/webhook delivery"
    )
    poll_history: int = _setting(
        "MAILQ_POLL_HISTORY", "7d", _duration, "poll runs older than this are pruned (seconds, or 7d, 12h, 30m; 0 keeps them)"
    )
    poll_history_per_mailbox: int = _setting(
        "MAILQ_POLL_HISTORY_PER_MAILBOX", "200", lambda n, r: _int(n, r, 0), "newest poll runs kept per mailbox (0: no count bound)"
    )
    oauth_refresh_ahead: float = _setting(
        "MAILQ_OAUTH_REFRESH_AHEAD",
        "300",
        lambda n, r: _float(n, r, 0),
        "seconds before expiry an OAuth2 access token is refreshed (at most half its lifetime)",
    )
    idle_refresh: float = _setting(
        "MAILQ_IDLE_REFRESH",
        "600",
        lambda n, r: _float(n, r, 1),
        "seconds an IDLE command lasts before the idler re-issues it (RFC 2177: under 29 min; NATs drop idle TCP after ~15)",
    )
    push_safety_interval: int = _setting(
        "MAILQ_PUSH_SAFETY_INTERVAL",
        "900",
        lambda n, r: _int(n, r, 1),
        "seconds between safety polls of a mailbox an idler holds connected",
    )
    idler_lease_ttl: float = _setting(
        "MAILQ_IDLER_LEASE_TTL",
        "30",
        lambda n, r: _float(n, r, 2),
        "an idler's mailbox lease lives this long unless renewed (a killed idler's share moves this fast)",
    )
    idler_capacity: int = _setting(
        "MAILQ_IDLER_CAPACITY", "10000", lambda n, r: _int(n, r, 1), "most IDLE connections one idler process holds"
    )
    idler_connect_rate: float = _setting(
        "MAILQ_IDLER_CONNECT_RATE",
        "100",
        lambda n, r: _float(n, r, 0.1),
        "IDLE connections an idler opens per second at most (spreads reconnects after a server restart)",
    )
    console_refresh: float = _setting("MAILQ_CONSOLE_REFRESH", "2", lambda n, r: _float(n, r, 0.2), "seconds between console refreshes")
    log_level: str = _setting(
        "MAILQ_LOG_LEVEL",
        "INFO",
        _log_level,
        "logging level of workers and scheduler: at INFO a poll logs one line only when something happened (new mail, an error, a health change); `DEBUG` adds every poll and RQ's per-job lines",
    )
    log_format: str = _setting(
        "MAILQ_LOG_FORMAT",
        "text",
        _log_format,
        "`json`: one JSON object per line (`ts`, `level`, `logger`, `message`, and `mailbox_id`, `outcome`, `new`, `state` on poll lines)",
    )

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


SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in dataclasses.fields(Settings)}
"""field name -> declaration, in declaration order."""


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| setting | default | what it does |", "|---|---|---|"]
    for s in SETTINGS.values():
        shown = s.shown if s.shown is not None else (f"`{s.default}`" if s.default else "—")
        lines.append(f"| `{s.env}` | {shown} | {s.doc} |")
    return "\n".join(lines)


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
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
