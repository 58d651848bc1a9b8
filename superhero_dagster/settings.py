"""The one place that reads environment variables.

Every other module receives a :class:`Settings` (or plain values taken from it), so tests and the
CLI can build settings explicitly and nothing depends on the process environment at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A configuration value is present but unusable; the message names the variable."""


def _parse_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true/false (1/0, yes/no, on/off), got {text!r}")


def _parse_channels(name: str, raw: str) -> tuple[str, ...]:
    channels = tuple(c.strip() for c in raw.split(",") if c.strip())
    if not channels:
        raise SettingsError(f"{name} must name at least one channel")
    return channels


def _parse_date(name: str, raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def _parse_cron(name: str, raw: str) -> str:
    """Five fields, checked here so a typo is one line at start, not a code location error."""
    text = " ".join(raw.split())
    if text.lower() == "off":
        return "off"
    if len(text.split(" ")) != 5 or not re.fullmatch(r"[0-9*/,\- ]+", text):
        raise SettingsError(
            f"{name} must be a 5-field cron schedule like '*/2 * * * *' or off, got {raw!r}"
        )
    return text


#: Compaction periods (``SUPERHERO_COMPACTION_PERIOD``).
PERIODS = ("hour", "day")


def _parse_period(name: str, raw: str) -> str:
    text = raw.strip().lower()
    if text not in PERIODS:
        raise SettingsError(f"{name} must be one of {', '.join(PERIODS)}, got {raw!r}")
    return text


def _parse_redis_url(name: str, raw: str) -> str:
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"{name} must start with redis://, rediss:// or unix://, got {redact_url(raw)!r}"
        )
    return raw


def redact_url(url: str) -> str:
    """Hide the password of a Redis/DB URL so it can be logged or shown in an error.

    Never raises (it runs inside error handlers): the netloc is split by hand rather than through
    ``.port``, which raises on a bad port, and an unparseable URL is hidden whole. Passwords given
    as query parameters (redis-py accepts ``?password=`` and ``?ssl_password=``) are hidden too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    # Replace in place (urlunsplit would turn ``unix:///path`` into ``unix:/path``).
    if netloc != parts.netloc:
        url = url.replace(parts.netloc, netloc, 1)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


#: ``password=...`` / ``ssl_password=...`` in a URL's query string (any case).
_SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:ssl_)?password=)[^&]*")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the Settings field it fills, how it is parsed."""

    name: str
    field: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str] = str


def _int(name: str, field: str, minimum: int) -> Variable:
    return Variable(name, field, lambda raw: _parse_int(name, raw, minimum))


def _bool(name: str, field: str) -> Variable:
    return Variable(
        name, field, lambda raw: _parse_bool(name, raw), lambda b: "true" if b else "false"
    )


def _path(name: str, field: str) -> Variable:
    return Variable(name, field, Path)


#: Every environment variable the project reads (documented in README, "Settings").
VARIABLES: tuple[Variable, ...] = (
    Variable("REDIS_URL", "redis_url", lambda raw: _parse_redis_url("REDIS_URL", raw)),
    _path("SUPERHERO_DATA_DIR", "data_dir"),
    _path("SUPERHERO_STATE_DIR", "state_dir"),
    _path("DAGSTER_HOME", "dagster_home"),
    _int("SUPERHERO_MAX_CONCURRENT_RUNS", "max_concurrent_runs", 1),
    Variable(
        "SUPERHERO_CHANNELS",
        "channels",
        lambda raw: _parse_channels("SUPERHERO_CHANNELS", raw),
        ",".join,
    ),
    Variable(
        "SUPERHERO_GAME_CHANNELS",
        "game_channels",
        lambda raw: _parse_channels("SUPERHERO_GAME_CHANNELS", raw),
        ",".join,
    ),
    _bool("SUPERHERO_ATTACK_STREAM", "attack_stream"),
    _int("SUPERHERO_STREAM_TTL_SECONDS", "stream_ttl_seconds", 60),
    Variable("SUPERHERO_NAMESPACE", "namespace", str),
    _int("SUPERHERO_MAX_PAYLOAD_BYTES", "max_payload_bytes", 64),
    _int("SUPERHERO_RECONCILE_SECONDS", "reconcile_seconds", 1),
    _int("SUPERHERO_SEEN_TTL_SECONDS", "seen_ttl_seconds", 60),
    _int("SUPERHERO_DEADLETTER_MAX", "deadletter_max", 1),
    _int("SUPERHERO_SENSOR_INTERVAL_SECONDS", "sensor_interval_seconds", 1),
    _int("SUPERHERO_SENSOR_LOOP_SECONDS", "sensor_loop_seconds", 0),
    _bool("SUPERHERO_FORK_RUN_WORKERS", "fork_run_workers"),
    _int("SUPERHERO_MAX_GAMES_PER_RUN", "max_games_per_run", 1),
    _int("SUPERHERO_MAX_GAMES_PER_TICK", "max_games_per_tick", 1),
    _int("SUPERHERO_EXPIRE_AFTER_SECONDS", "expire_after_seconds", 0),
    _int("SUPERHERO_SNAPSHOT_RETENTION_SECONDS", "snapshot_retention_seconds", 0),
    _int("SUPERHERO_MATERIALIZED_KEEP", "materialized_keep", 1),
    _int("SUPERHERO_RETENTION_DAYS", "retention_days", 0),
    _bool("SUPERHERO_DELETE_GAME_FILES", "delete_game_files"),
    Variable(
        "SUPERHERO_ANALYTICS_START",
        "analytics_start",
        lambda raw: _parse_date("SUPERHERO_ANALYTICS_START", raw),
        date.isoformat,
    ),
    Variable(
        "SUPERHERO_ANALYTICS_CRON",
        "analytics_cron",
        lambda raw: _parse_cron("SUPERHERO_ANALYTICS_CRON", raw),
    ),
    Variable(
        "SUPERHERO_COMPACTION_PERIOD",
        "compaction_period",
        lambda raw: _parse_period("SUPERHERO_COMPACTION_PERIOD", raw),
    ),
    _int("SUPERHERO_MAX_GAME_PARTITIONS", "max_game_partitions", 100),
    Variable(
        "SUPERHERO_RETENTION_CRON",
        "retention_cron",
        lambda raw: _parse_cron("SUPERHERO_RETENTION_CRON", raw),
    ),
)


@dataclass(frozen=True)
class Settings:
    """Runtime configuration, immutable once read."""

    redis_url: str | None = None
    data_dir: Path = Path("./data")
    state_dir: Path = Path("./.superhero")
    dagster_home: Path | None = None
    max_concurrent_runs: int = 2
    channels: tuple[str, ...] = ("lib.server.lobby",)
    game_channels: tuple[str, ...] = ("lib.server.game",)
    attack_stream: bool = True
    stream_ttl_seconds: int = 900
    namespace: str = "superhero_dagster"
    max_payload_bytes: int = 65536
    reconcile_seconds: int = 30
    seen_ttl_seconds: int = 7 * 24 * 3600
    deadletter_max: int = 10000
    sensor_interval_seconds: int = 5
    sensor_loop_seconds: int = 1  # superhero-dagster daemon only; 0 keeps Dagster's 5 s
    fork_run_workers: bool = True  # superhero-dagster daemon / code-server only
    max_games_per_run: int = 500
    max_games_per_tick: int = 2000
    expire_after_seconds: int = 30
    snapshot_retention_seconds: int = 3600
    materialized_keep: int = 100_000
    retention_days: int = 30
    delete_game_files: bool = False
    analytics_start: date | None = None
    analytics_cron: str = "*/2 * * * *"
    compaction_period: str = "hour"
    max_game_partitions: int = 100_000
    retention_cron: str = "*/2 * * * *"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: the process environment).

        An unset or empty variable keeps the field's default.
        """
        env = os.environ if env is None else env
        values = {var.field: var.parse(raw) for var in VARIABLES if (raw := env.get(var.name))}
        return cls(**values)  # type: ignore[arg-type]

    @property
    def resolved_dagster_home(self) -> Path:
        """``DAGSTER_HOME`` if set, else a folder in the project's state directory."""
        return self.dagster_home or (self.state_dir / "dagster_home")

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for child processes (daemon, listeners).

        Paths are made absolute (children may run elsewhere) and ``DAGSTER_HOME`` is resolved.
        """
        env = {}
        for var in VARIABLES:
            value = getattr(self, var.field)
            if var.field == "dagster_home":
                value = self.resolved_dagster_home
            if isinstance(value, Path):
                value = value.resolve()
            if value is not None:
                env[var.name] = var.format(value)
        return env

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and CLI options)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _defaults() -> dict[str, str | None]:
    defaults = {f.name: f.default for f in fields(Settings)}
    return {
        var.name: None if defaults[var.field] is None else var.format(defaults[var.field])
        for var in VARIABLES
    }


#: Variable name -> its default as text (None: unset means "derive it", e.g. an embedded Redis).
ENV_DEFAULTS: dict[str, str | None] = _defaults()
